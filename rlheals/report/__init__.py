"""Report: named references (sft_best, rl_best, ...), the scorecard of the four findings, figures.

Owns the verdicts and how they are shown. The top of the package: it may import any stage
(evaluation's statistics above all), and nothing imports it but the workflow.
"""
