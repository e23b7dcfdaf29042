"""The GeneralPoints task: cards and their rules, the exact solver, the verifier and the prompts.

Owns everything that defines the problem and how an answer is graded (rewards, feedback
text), independent of any model. The bottom of the package: it imports nothing from
rlheals but itself, so every stage above grades and phrases hands the same way.
"""
