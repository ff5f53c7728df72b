"""The README's example: build, train and measure a small SpikingSSM.

Run from the repository root: .venv/bin/python docs/example.py
About 15 s on 2 idle cores (test accuracy 92.22 % on this project's machine), plus a one-time
compilation of the LIF kernel the first time neurojoule runs.
"""

import torch
from torch.utils.data import DataLoader

from neurojoule.data import load_digits_split
from neurojoule.energy import measure_energy
from neurojoule.layers import ssm_parameter_groups
from neurojoule.models import build_model

torch.manual_seed(0)
# scikit-learn's 8x8 digits read pixel by pixel: sequences of 64 steps, one value per step
train_set, test_set = load_digits_split(seed=0)
loader = DataLoader(train_set, batch_size=64, shuffle=True)
model = build_model("spiking-ssm", d_model=32, n_layers=2, d_state=8, in_channels=1)

# plain torch training; S4D kernel parameters get their own group (lr <= 1e-3, no decay)
optimizer = torch.optim.AdamW(ssm_parameter_groups(model, lr=0.01, weight_decay=0.01))
epochs = 10
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))
for _ in range(epochs):
    for pixels, labels in loader:
        loss = torch.nn.functional.cross_entropy(model(pixels.unsqueeze(-1)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()

model.eval()
test_x, test_y = test_set.tensors
test_x = test_x.unsqueeze(-1)  # [360, 64, 1]
with torch.no_grad():
    accuracy = (model(test_x).argmax(-1) == test_y).float().mean().item()
print(f"test accuracy {accuracy:.2%}")
report = measure_energy(model, test_x.split(120), table="45nm")  # energy on real test data
print(report.format_table())  # per layer: spike rates, MACs, SOPs, energy; the MFI verdict
