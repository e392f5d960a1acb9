"""The engine: plugin contracts and registry, recipes, the stage plan, the results store.

It knows stages, plugins and stores, and no model or task. Modules here import only the standard
library, third-party packages and each other; nothing above (data, models, training, merging,
evaluation, pipeline, report, cli) is imported from here.
"""
