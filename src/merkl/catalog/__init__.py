"""The catalog: Meteor-compatible recipes that extract metadata assets, process and sink them.

A recipe names one source (`merlin`, …), optional processors (`labels`, `enrich`) and one or
more sinks (`console`, `file`, `http`, `compass`). Records are Meteor `Asset` JSON
(`raystack.assets.v1beta2`), built with the helpers in `merkl.catalog.asset`; plugin authors
subclass the ABCs in `merkl.catalog.plugin` and register under an entry point group (see
`merkl.catalog.registry`).

Nothing here is imported by `import merkl`: pydantic, httpx, yaml and google-auth load only
when a catalog command runs.
"""
