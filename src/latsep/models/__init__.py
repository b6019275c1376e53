"""The science: codec, priors, likelihoods, separation (and its method registry), metrics.

torch/numpy only. Imports none of the parts built on it (bundle, corpus, training,
evaluation) nor the service side, FastAPI, rq or argparse (tests/test_import_direction.py).
"""
