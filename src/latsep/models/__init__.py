"""The science: codec, priors, likelihoods, separation, training, data, metrics.

torch/numpy only. Never imports latsep.service or latsep.worker, nor FastAPI, rq or argparse.
"""
