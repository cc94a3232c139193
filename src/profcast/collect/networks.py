"""The reference suite's networks, in plain PyTorch: what people train, at any width, from random inputs.

No weights or datasets are downloaded: each network is built from its layer shapes and trained on
random tensors of the right shape (images ``batch x 3 x side x side``, token ids ``batch x length``).
``width`` scales every channel count and hidden size (1.0 is the published network; the ``smoke``
suite uses a few percent of it) and ``depth`` the number of transformer layers, so the same
definitions serve a CI run in seconds and a cloud GPU's catalogue run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# What each network's input side means, and the name its dataset gets (``64image`` -> input size 64,
# read back by profcast.regressors.whatif.input_size, as PROFET's ``64dataset``).
IMAGE, SEQUENCE = "image", "tokens"
CLASSES = 1000
VOCABULARY = 30522  # BERT's WordPiece vocabulary; GPT-2's 50257 would only make the embedding larger


@dataclass(frozen=True)
class Network:
    """One reference network: its family (``cnn``, ``transformer``, ``rnn``), what its input size is
    (IMAGE side or SEQUENCE length) and ``build(width, depth, input_size) -> nn.Module``."""

    name: str
    family: str
    input_kind: str
    build: Callable


def scaled(channels: int, width: float) -> int:
    """A channel count scaled by ``width``, at least 4 (and even, so grouped layers still divide)."""
    return max(4, int(round(channels * width / 2)) * 2)


def _torch():
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    return torch


# ---- CNNs -------------------------------------------------------------------------------------------


def _conv_bn(nn, inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


def _classifier(nn, features: int):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(features, CLASSES))


def resnet(blocks: list[int], bottleneck: bool):
    """ResNet-18 (basic blocks [2, 2, 2, 2]) or ResNet-50 (bottlenecks [3, 4, 6, 3]), He et al. 2016."""

    def build(width: float, depth: float, input_size: int):
        nn = _torch().nn

        class Block(nn.Module):
            def __init__(self, inputs: int, planes: int, stride: int):
                super().__init__()
                outputs = planes * (4 if bottleneck else 1)
                if bottleneck:
                    self.body = nn.Sequential(
                        _conv_bn(nn, inputs, planes, 1),
                        _conv_bn(nn, planes, planes, 3, stride),
                        nn.Conv2d(planes, outputs, 1, bias=False),
                        nn.BatchNorm2d(outputs),
                    )
                else:
                    self.body = nn.Sequential(
                        _conv_bn(nn, inputs, planes, 3, stride),
                        nn.Conv2d(planes, outputs, 3, 1, 1, bias=False),
                        nn.BatchNorm2d(outputs),
                    )
                self.shortcut = (
                    nn.Identity()
                    if stride == 1 and inputs == outputs
                    else nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
                )
                self.outputs = outputs

            def forward(self, x):
                return (self.body(x) + self.shortcut(x)).relu()

        stem = scaled(64, width)
        layers, channels = [_conv_bn(nn, 3, stem, 7, 2), nn.MaxPool2d(3, 2, 1)], stem
        for stage, count in enumerate(blocks):
            planes = scaled(64 * 2**stage, width)
            for index in range(count):
                block = Block(channels, planes, 2 if index == 0 and stage > 0 else 1)
                layers.append(block)
                channels = block.outputs
        return nn.Sequential(*layers, _classifier(nn, channels))

    return build


def vgg(width: float, depth: float, input_size: int):
    """VGG-11 (Simonyan & Zisserman 2014, configuration A) with batch norm and a global-pool head."""
    nn = _torch().nn
    layers, channels = [], 3
    for item in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: small inputs never pool to nothing
        else:
            layers.append(_conv_bn(nn, channels, scaled(item, width)))
            channels = scaled(item, width)
    return nn.Sequential(*layers, _classifier(nn, channels))


def mobilenet(width: float, depth: float, input_size: int):
    """MobileNetV2 (Sandler et al. 2018): inverted residuals of depthwise-separable convolutions."""
    nn = _torch().nn

    class InvertedResidual(nn.Module):
        def __init__(self, inputs: int, outputs: int, stride: int, expansion: int):
            super().__init__()
            hidden = inputs * expansion
            self.residual = stride == 1 and inputs == outputs
            self.body = nn.Sequential(
                *([_conv_bn(nn, inputs, hidden, 1)] if expansion != 1 else []),
                _conv_bn(nn, hidden, hidden, 3, stride, groups=hidden),
                nn.Conv2d(hidden, outputs, 1, bias=False),
                nn.BatchNorm2d(outputs),
            )

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    channels = scaled(32, width)
    layers = [_conv_bn(nn, 3, channels, 3, 2)]
    # (expansion, output channels, repeats, first stride): the paper's Table 2
    for expansion, outputs, repeats, stride in (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ):
        for index in range(repeats):
            layers.append(InvertedResidual(channels, scaled(outputs, width), stride if index == 0 else 1, expansion))
            channels = scaled(outputs, width)
    last = scaled(1280, width)
    return nn.Sequential(*layers, _conv_bn(nn, channels, last, 1), _classifier(nn, last))


def inception(width: float, depth: float, input_size: int):
    """An Inception (GoogLeNet, Szegedy et al. 2015) block net: a stem, then blocks of four parallel
    branches (1x1, 3x3, 5x5 as two 3x3, pooled 1x1) concatenated, with pooling between stages."""
    nn = _torch().nn
    torch = _torch()

    class Block(nn.Module):
        def __init__(self, inputs: int, branch: int):
            super().__init__()
            self.branches = nn.ModuleList(
                [
                    _conv_bn(nn, inputs, branch, 1),
                    nn.Sequential(_conv_bn(nn, inputs, branch, 1), _conv_bn(nn, branch, branch, 3)),
                    nn.Sequential(
                        _conv_bn(nn, inputs, branch // 2, 1),
                        _conv_bn(nn, branch // 2, branch, 3),
                        _conv_bn(nn, branch, branch, 3),
                    ),
                    nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv_bn(nn, inputs, branch, 1)),
                ]
            )
            self.outputs = 4 * branch

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.branches], dim=1)

    channels = scaled(192, width)
    layers = [
        _conv_bn(nn, 3, scaled(64, width), 7, 2),
        nn.MaxPool2d(3, 2, 1),
        _conv_bn(nn, scaled(64, width), channels),
    ]
    for stage, (count, branch) in enumerate(((2, 64), (5, 128), (2, 192))):
        if stage:
            layers.append(nn.MaxPool2d(3, 2, 1))
        for _ in range(count):
            block = Block(channels, scaled(branch, width))
            layers.append(block)
            channels = block.outputs
    return nn.Sequential(*layers, _classifier(nn, channels))


# ---- Transformers and a recurrent net ---------------------------------------------------------------


def transformer(hidden: int, layers: int, heads: int, causal: bool):
    """A BERT-like encoder (bidirectional) or GPT-2-like decoder (``causal``: each token sees the ones
    before it), pre-norm, GELU, four-times-wide feed-forward, predicting a token at every position."""

    def build(width: float, depth: float, input_size: int):
        torch = _torch()
        nn = torch.nn
        model_width = max(heads, int(round(hidden * width / heads)) * heads)  # a multiple of the heads
        count = max(1, int(round(layers * depth)))

        class LanguageModel(nn.Module):
            def __init__(self):
                super().__init__()
                self.tokens = nn.Embedding(VOCABULARY, model_width)
                self.positions = nn.Embedding(input_size, model_width)
                layer = nn.TransformerEncoderLayer(
                    model_width,
                    heads,
                    4 * model_width,
                    dropout=0.1,
                    activation="gelu",
                    batch_first=True,
                    norm_first=True,
                )
                self.layers = nn.TransformerEncoder(layer, count, enable_nested_tensor=False)
                self.head = nn.Linear(model_width, VOCABULARY)

            def forward(self, ids):
                positions = torch.arange(ids.shape[1], device=ids.device)
                mask = (
                    nn.Transformer.generate_square_subsequent_mask(ids.shape[1], device=ids.device) if causal else None
                )
                return self.head(self.layers(self.tokens(ids) + self.positions(positions), mask=mask, is_causal=causal))

        return LanguageModel()

    return build


def vit(width: float, depth: float, input_size: int):
    """ViT-Base/16 (Dosovitskiy et al. 2020): 16x16 patches embedded, a class token, 12 encoder layers."""
    torch = _torch()
    nn = torch.nn
    heads = 12
    model_width = max(heads, int(round(768 * width / heads)) * heads)
    patch = 16 if input_size >= 64 else 4  # small images keep several patches
    count = max(1, int(round(12 * depth)))

    class VisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patches = nn.Conv2d(3, model_width, patch, patch)
            self.cls = nn.Parameter(torch.zeros(1, 1, model_width))
            self.positions = nn.Parameter(torch.zeros(1, (input_size // patch) ** 2 + 1, model_width))
            layer = nn.TransformerEncoderLayer(
                model_width, heads, 4 * model_width, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
            )
            self.layers = nn.TransformerEncoder(layer, count, enable_nested_tensor=False)
            self.head = nn.Linear(model_width, CLASSES)

        def forward(self, images):
            x = self.patches(images).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.positions
            return self.head(self.layers(x)[:, 0])

    return VisionTransformer()


def lstm(width: float, depth: float, input_size: int):
    """A two-layer LSTM language model (hidden 1024 at width 1), predicting a token at every position."""
    nn = _torch().nn
    hidden = scaled(1024, width)

    class RecurrentModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(VOCABULARY, hidden)
            self.recurrent = nn.LSTM(hidden, hidden, num_layers=max(1, int(round(2 * depth))), batch_first=True)
            self.head = nn.Linear(hidden, VOCABULARY)

        def forward(self, ids):
            return self.head(self.recurrent(self.tokens(ids))[0])

    return RecurrentModel()


NETWORKS = {
    network.name: network
    for network in (
        Network("resnet18", "cnn", IMAGE, resnet([2, 2, 2, 2], bottleneck=False)),
        Network("resnet50", "cnn", IMAGE, resnet([3, 4, 6, 3], bottleneck=True)),
        Network("vgg11", "cnn", IMAGE, vgg),
        Network("mobilenetv2", "cnn", IMAGE, mobilenet),
        Network("inception", "cnn", IMAGE, inception),
        Network("bertbase", "transformer", SEQUENCE, transformer(768, 12, 12, causal=False)),
        Network("bertlarge", "transformer", SEQUENCE, transformer(1024, 24, 16, causal=False)),
        Network("gpt2small", "transformer", SEQUENCE, transformer(768, 12, 12, causal=True)),
        Network("gpt2medium", "transformer", SEQUENCE, transformer(1024, 24, 16, causal=True)),
        Network("vit", "transformer", IMAGE, vit),
        Network("lstm", "rnn", SEQUENCE, lstm),
    )
}


def dataset_name(network: Network, input_size: int) -> str:
    """The run's dataset: the input size first (``64image``, ``128tokens``), as the what-if reads it."""
    return f"{input_size}{network.input_kind}"


def random_batch(network: Network, batchsize: int, input_size: int, device):
    """Random inputs and labels of the right shape on ``device``: (images, classes) or (token ids, next tokens)."""
    torch = _torch()
    generator = torch.Generator().manual_seed(0)  # the same batch on every machine
    if network.input_kind == IMAGE:
        inputs = torch.randn(batchsize, 3, input_size, input_size, generator=generator)
        labels = torch.randint(0, CLASSES, (batchsize,), generator=generator)
    else:
        inputs = torch.randint(0, VOCABULARY, (batchsize, input_size), generator=generator)
        labels = torch.randint(0, VOCABULARY, (batchsize, input_size), generator=generator)
    return inputs.to(device), labels.to(device)


def training_loss(outputs, labels):
    """Cross-entropy over classes (images) or over every position's next token (sequences)."""
    functional = _torch().nn.functional
    return functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), labels.reshape(-1))
