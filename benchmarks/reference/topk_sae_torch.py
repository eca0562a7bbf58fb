#!/usr/bin/env python3
"""A plain PyTorch TopK SAE with the reports' setup, as the reference our C++ trainer is timed against.

Encoder Linear(D, F) with bias; top-K of the encoder output, ReLU; decoder Linear(F, D) without bias
whose columns (one per latent) are renormalised to unit length after every step; MSE loss; Adam.
Trains on the first --train-rows rows of a 2-D .npy, scores explained variance
(1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2) on the rest, and prints one JSON line.

  python3 benchmarks/reference/topk_sae_torch.py --data x.npy -k 20 --latents 2048 --threads 2
  python3 benchmarks/reference/topk_sae_torch.py --data x.npy -k 20 --latents 2048 --device cuda
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F


class TopKSAE(torch.nn.Module):
    def __init__(self, d, f, k):
        super().__init__()
        self.k = k
        self.encoder = torch.nn.Linear(d, f)
        self.decoder = torch.nn.Linear(f, d, bias=False)
        self.normalize_decoder()

    @torch.no_grad()
    def normalize_decoder(self):
        self.decoder.weight /= self.decoder.weight.norm(dim=0, keepdim=True).clamp_min(1e-12)

    def forward(self, x):
        pre = self.encoder(x)
        values, indices = pre.topk(self.k, dim=-1)
        z = torch.zeros_like(pre).scatter_(-1, indices, F.relu(values))
        return self.decoder(z)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("-k", type=int, required=True)
    ap.add_argument("--latents", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-rows", type=int, default=5978)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (data is moved there before timing)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)  # Debian's torch otherwise starts with one thread
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    x = torch.from_numpy(np.load(args.data).astype(np.float32)).to(dev)
    train, val = x[: args.train_rows], x[args.train_rows :]
    model = TopKSAE(x.shape[1], args.latents, args.k).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(train.shape[0], device=dev)
        for b in range(0, train.shape[0], args.batch_size):
            batch = train[perm[b : b + args.batch_size]]
            loss = F.mse_loss(model(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.normalize_decoder()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        resid = ((val - model(val)) ** 2).sum().double()
        total = ((val - val.mean(dim=0)) ** 2).sum().double()
    print(json.dumps({"k": args.k, "latents": args.latents, "seconds": seconds, "ev": float(1 - resid / total),
                      "threads": torch.get_num_threads(), "device": args.device, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
