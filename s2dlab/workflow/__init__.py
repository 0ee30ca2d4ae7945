"""The workflow: the paper's stages and arms, run, evaluated and summarised.

The stages (`stages`: base models, teacher GRPO, the forward-KL warmup, OPD, SFT, student GRPO), the arms and their
one order (`arms`), the plan and its runner (`pipeline`), evaluation (`evaluate`), the C1 / C2 measurements that
run models (`measure`), the pure summary of a run folder (`summary`) and the C1 x C2 map (`cmap`). Imports the
core; of the instruments only the token lens, which a finished run computes (`pipeline.compute_lens`, a lazy
import).
"""
