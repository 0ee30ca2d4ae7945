"""The instruments: what looks inside a run or a pair of models.

The token lens (`lens`), counterfactual branches (`branches`), the KL estimators (`estimators`), `s2dlab check`
on any teacher and student (`check`) and the Trainer callback that logs dense rewards in someone else's training
loop (`callback`). Imports the core and reads the workflow's summary (`summary`'s one verdict per condition); the
workflow never imports an instrument except the lens.
"""
