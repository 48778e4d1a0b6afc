"""Optimizer implementations (core.optimizer.Optimizer): quantisers and compilers."""
