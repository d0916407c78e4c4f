"""paper_repro: executable companion to "Beyond Stationarity: Rethinking Codebook Collapse in
Vector Quantization" (Lu et al.): NS-VQ, TransVQ and their baselines, with the paper's theory,
toy demos and experiment grids."""

__version__ = "0.1.0"
