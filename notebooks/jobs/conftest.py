"""The notebooks in this folder are job tasks, not chapters: ingest, train, validate and promote are the tasks of
notebook 23's retraining job, and capstone-quality and capstone-retrain those of notebook 26's. A task reads what
an upstream task of the same job run wrote, or changes the registry as its job run intends, so executing it on its
own (as ``pytest notebooks --nbval`` would) is not a check of anything. Notebooks 23 and 26 execute them through
``helpers.jobs``, and nbval checks those two chapters. Each task notebook is committed as executed by such a run."""

collect_ignore_glob = ["*.ipynb"]
