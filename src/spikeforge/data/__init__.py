"""Datasets: generators, loaders of real published files, encoders.

Long-sequence tasks (SpikingSSM / Long Range Arena) and image tasks (Fashion-MNIST,
CIFAR-10/100, digits) by name: `sequence_task`; language modelling (WikiText-103, the King
James Bible) by name: `lm_task`. Every dataset returns (input, label); token inputs are
LongTensor ids with 0 for padding, real-valued sequences are float tensors [L, channels],
images float tensors [C, H, W]. Generated data is cached under `cache_dir()`.
"""

from spikeforge.data.aan import AANDataset
from spikeforge.data.augment import Augmented, ImageAugmentation, random_crop, random_flip
from spikeforge.data.cache import atomic_writer, cache_dir
from spikeforge.data.cifar import CIFAR10_MEAN_STD, CIFAR100_MEAN_STD, CIFARDataset, load_cifar
from spikeforge.data.corpus import Corpus, TokenWindows, Vocabulary
from spikeforge.data.digits import load_digits_images, load_digits_split
from spikeforge.data.fashion_mnist import (
    FASHION_MNIST_MEAN_STD,
    FashionMNISTDataset,
    load_fashion_mnist,
    pixel_permutation,
)
from spikeforge.data.idx import read_idx
from spikeforge.data.imdb import IMDBDataset
from spikeforge.data.kjv import kjv_corpus, kjv_verses
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
from spikeforge.data.tasks import LM_TASKS, TASKS, TaskInfo, is_lm_task, lm_task, sequence_task
from spikeforge.data.tokens import pad_collate
from spikeforge.data.wikitext import find_wikitext103, wikitext103

__all__ = [
    "AANDataset",
    "Augmented",
    "CIFAR10_MEAN_STD",
    "CIFAR100_MEAN_STD",
    "CIFARDataset",
    "Corpus",
    "FASHION_MNIST_MEAN_STD",
    "FashionMNISTDataset",
    "IMDBDataset",
    "ImageAugmentation",
    "ListOpsDataset",
    "LM_TASKS",
    "ListOpsSpec",
    "PathfinderDataset",
    "TASKS",
    "TaskInfo",
    "TokenWindows",
    "Vocabulary",
    "atomic_writer",
    "cache_dir",
    "find_wikitext103",
    "fraction_split",
    "generate_listops",
    "held_out_split",
    "is_lm_task",
    "kjv_corpus",
    "kjv_verses",
    "listops_datasets",
    "listops_files",
    "listops_value",
    "lm_task",
    "load_cifar",
    "load_digits_images",
    "load_digits_split",
    "load_fashion_mnist",
    "pad_collate",
    "pixel_permutation",
    "random_crop",
    "random_flip",
    "read_idx",
    "sequence_task",
    "wikitext103",
]
