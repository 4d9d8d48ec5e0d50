"""The single exception tree of merkl.

```
MerklError                              str() is the message, ready for `merkl: error: …`
├── UsageError(ValueError)              bad argument to a public function or command
│   ├── serve.payload.RequestError      a bad HTTP request to `merkl serve` (carries the status)
│   ├── TaskDefinitionError             bad @task options, raised at decoration time
│   ├── ConfigError                     merkl.toml / .merkl/config.toml invalid: names file and key
│   │   └── RecipeError                 catalog recipe invalid: names file, line and key
│   └── PathOutsideRepoError            a file a served pipeline names is outside the repository
├── NotARepoError                       no .merkl/ here or above: "run `merkl init`"
├── HashingError(TypeError)             value has no canonical encoding: names argument and type
├── SerializationError                  an output cannot be (de)serialized by its serializer
├── CacheError
│   ├── CacheMissError(KeyError)        hash not found in memory, store or any remote
│   └── CorruptObjectError              bytes do not hash to their oid; object removed
├── EvaluationError                     a placeholder cannot be evaluated (missing arg, bad outs)
├── TrackingError
│   ├── PointerFileError(ValueError)    malformed <path>.merkl
│   └── TrackedFileChangedError         <path> differs from its pointer
├── RemoteError
│   ├── UnknownRemoteError(KeyError)    name not in config / registry: lists known names
│   ├── RemoteUnavailableError(ImportError)  extra not installed: "pip install 'merkl[s3]'"
│   └── TransferError                   push/pull finished with failures
├── ExecutorError                       executor setup / lost worker (never a user exception)
├── CatalogError
│   ├── PluginNotFoundError(KeyError)
│   ├── ExtractError                    fatal source failure
│   ├── catalog.plugin.RetryableError   a failure worth retrying (timeout, 5xx, 429)
│   └── merlin.client.MerlinClientError, merlin.build.ModelBuildError
└── client.ServerError                  `merkl.client.Client`: the server answered an error
```

Exceptions raised inside a task body are never wrapped: they propagate unchanged with a note
naming the task (see `merkl.executors.base`).
"""

from __future__ import annotations


class MerklError(Exception):
    """Root of every error merkl raises on purpose."""

    def __init__(self, message: str = "", **attrs: object) -> None:
        super().__init__(message)
        self.message = message
        for key, value in attrs.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        # KeyError subclasses would otherwise print the message in quotes.
        return self.message


class UsageError(MerklError, ValueError):
    """A bad argument to a public function or command."""


class TaskDefinitionError(UsageError):
    """Invalid `@task` options; raised when the function is decorated."""


class ConfigError(UsageError):
    """An invalid configuration file; the message names the file and key."""


class RecipeError(ConfigError):
    """An invalid catalog recipe; the message names the file, line and key."""


class PathOutsideRepoError(UsageError):
    """A file named under `merkl serve` resolves outside the repository (attribute `path`)."""


class NotARepoError(MerklError):
    """No `.merkl/` directory in the working directory or any parent."""


class HashingError(MerklError, TypeError):
    """A value has no canonical encoding."""


class SerializationError(MerklError):
    """A task output could not be serialized or deserialized."""


class CacheError(MerklError):
    """Something went wrong in the local cache."""


class CacheMissError(CacheError, KeyError):
    """A hash is in no cache that was consulted."""


class CorruptObjectError(CacheError):
    """Stored bytes do not hash to their object id."""


class EvaluationError(MerklError):
    """A placeholder cannot be evaluated (a missing argument, a wrong number of outputs)."""


class TrackingError(MerklError):
    """A tracked file or its pointer is in a state merkl cannot work with."""


class PointerFileError(TrackingError, ValueError):
    """A `<path>.merkl` pointer file is malformed."""


class TrackedFileChangedError(TrackingError):
    """A tracked file differs from what its pointer records."""


class RemoteError(MerklError):
    """A remote could not be reached or used."""


class UnknownRemoteError(RemoteError, KeyError):
    """A remote name or URL scheme that is not configured or known."""


class RemoteUnavailableError(RemoteError, ImportError):
    """The optional dependency a remote needs is not installed."""


class TransferError(RemoteError):
    """A push or pull finished with failures."""


class ExecutorError(MerklError):
    """An executor could not be set up or lost a worker."""


class CatalogError(MerklError):
    """A catalog recipe could not be run."""


class PluginNotFoundError(CatalogError, KeyError):
    """No catalog plugin of that name."""


class ExtractError(CatalogError):
    """A source failed in a way that fails the whole recipe."""


class MerklWarning(UserWarning):
    """A degradation that loses no data (a slow fallback, a skipped foreign file)."""
