"""Built-in visionsuite task plugins, installed as ``visionsuite_tasks``.

Each sub-package is registered in pyproject.toml under the entry-point group
``visionsuite.tasks``, exactly as an outside package registers its own tasks.
"""
