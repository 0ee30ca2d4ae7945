"""The store and the models: what every other layer stands on.

Configuration (`config`), the run folder and its stage records (`runs`), loading and saving models (`models`),
the tasks and their data (`tasks`, `data`), sampling and tokenised text (`generation`, `token_text`), grading
(`rewards`), per-token scoring (`scoring`), the statistics behind C1, C2 and every interval (`diagnostics`), and
the processes of a multi-GPU run (`distributed`). Modules here import only each other: never the workflow, the
instruments or the views.
"""
