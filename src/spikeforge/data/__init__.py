"""Datasets: generators, loaders of real published files, encoders.

Long-sequence tasks (SpikingSSM / Long Range Arena) by name: `sequence_task`. Every dataset
returns (input, label); token inputs are LongTensor ids with 0 for padding, real-valued
sequences are float tensors [L, channels]. Generated data is cached under `cache_dir()`.
"""

from spikeforge.data.aan import AANDataset
from spikeforge.data.cache import atomic_writer, cache_dir
from spikeforge.data.cifar import CIFARDataset, load_cifar
from spikeforge.data.digits import load_digits_split
from spikeforge.data.fashion_mnist import (
    FASHION_MNIST_MEAN_STD,
    FashionMNISTDataset,
    load_fashion_mnist,
    pixel_permutation,
)
from spikeforge.data.idx import read_idx
from spikeforge.data.imdb import IMDBDataset
from spikeforge.data.listops import (
    ListOpsDataset,
    ListOpsSpec,
    generate_listops,
    listops_datasets,
    listops_files,
    listops_value,
)
from spikeforge.data.pathfinder import PathfinderDataset
from spikeforge.data.splits import fraction_split, held_out_split
from spikeforge.data.tasks import TASKS, TaskInfo, sequence_task
from spikeforge.data.tokens import pad_collate

__all__ = [
    "AANDataset",
    "CIFARDataset",
    "FASHION_MNIST_MEAN_STD",
    "FashionMNISTDataset",
    "IMDBDataset",
    "ListOpsDataset",
    "ListOpsSpec",
    "PathfinderDataset",
    "TASKS",
    "TaskInfo",
    "atomic_writer",
    "cache_dir",
    "fraction_split",
    "generate_listops",
    "held_out_split",
    "listops_datasets",
    "listops_files",
    "listops_value",
    "load_cifar",
    "load_digits_split",
    "load_fashion_mnist",
    "pad_collate",
    "pixel_permutation",
    "read_idx",
    "sequence_task",
]
