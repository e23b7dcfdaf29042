"""SVD: the compiled extension's Python face (`linalg`), the spectral analysis and the edits.

Owns everything about weight matrices: batched SVD and principal angles on CPU or GPU
(`linalg`, backed by `_svd_cpu` / `_svd_cuda` with a numpy fallback), the per-checkpoint
analysis against references, and the singular-vector/value edits that build new
checkpoints. Imports only the top-level helpers (atomic, checks); the stages above
choose which checkpoints it compares.
"""
