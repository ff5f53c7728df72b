"""Datasets: generators, loaders of real published files, encoders.

Long-sequence tasks (SpikingSSM / Long Range Arena) and image tasks (Fashion-MNIST,
CIFAR-10/100, digits) by name: `classification_task`; language modelling (WikiText-103, the King
James Bible) by name: `lm_task`. Every dataset returns (input, label); token inputs are
LongTensor ids with 0 for padding, real-valued sequences are float tensors [L, channels],
images float tensors [C, H, W]. Generated data is cached under `cache_dir()`.
"""

from neurojoule.data.aan import AANDataset
from neurojoule.data.augment import Augmented, ImageAugmentation, random_crop, random_flip
from neurojoule.data.cache import cache_dir
from neurojoule.data.cifar import CIFAR10_MEAN_STD, CIFAR100_MEAN_STD, CIFARDataset, load_cifar
from neurojoule.data.corpus import Corpus, TokenWindows, Vocabulary
from neurojoule.data.digits import load_digits_images, load_digits_split
from neurojoule.data.fashion_mnist import (
    FASHION_MNIST_MEAN_STD,
    FashionMNISTDataset,
    load_fashion_mnist,
    pixel_permutation,
)
from neurojoule.data.idx import read_idx
from neurojoule.data.imdb import IMDBDataset
from neurojoule.data.kjv import kjv_corpus, kjv_verses
from neurojoule.data.listops import ListOpsSpec, generate_listops, listops_files, listops_value
from neurojoule.data.listops_reader import ListOpsDataset, listops_datasets
from neurojoule.data.pathfinder import PathfinderDataset
from neurojoule.data.splits import fraction_split, held_out_split
from neurojoule.data.tasks import (
    LM_TASKS,
    TASKS,
    TaskInfo,
    check_task_options,
    classification_task,
    is_lm_task,
    lm_task,
)
from neurojoule.data.tokens import pad_collate
from neurojoule.data.wikitext import find_wikitext103, wikitext103

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
    "cache_dir",
    "check_task_options",
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
    "classification_task",
    "wikitext103",
]
