"""tlsweep's Keras MobileNetV2 (nsfwjs weights) as a torchvision model.

Reads the weights bench/export-mobilenet-v2-weights.ts dumps and loads them
into torchvision's ``mobilenet_v2().features`` so that it computes the same
function as the Keras model up to ``out_relu``:

- Keras conv kernels are HWIO, torch OIHW; Keras depthwise kernels are HWC1,
  torch C1HW (groups = C).
- BatchNormalization gamma/beta/moving_mean/moving_variance map to
  weight/bias/running_mean/running_var, with Keras' epsilon 1e-3 (torch's
  default is 1e-5).
- Keras pads before every stride-2 convolution with ``correct_pad``: one
  pixel less at the top/left when the input size is even. torchvision pads
  symmetrically (padding=1), which shifts the sampling grid; those
  convolutions get an explicit ``ZeroPad2d`` and padding 0 instead.
- Keras ``ReLU(max_value=6)`` is torchvision's ``ReLU6``.

The unfreeze mapping is by Keras layer: ``unfreeze = N`` trains the torch
modules holding the weights of ``base_model.layers[-N:]``.
"""
import json
import math
import os

import numpy as np
import torch
from torch import nn
import torchvision

KERAS_BN_EPSILON = 1e-3
FEATURE_CHANNELS = 1280


def correct_pad(size, kernel_size=3):
    """Keras imagenet_utils.correct_pad as torch ZeroPad2d (left, right, top, bottom)."""
    adjust = 1 - (size % 2)
    half = kernel_size // 2
    return (half - adjust, half, half - adjust, half)


def load_keras_weights(weights_dir):
    """The exported manifest and {weight name: numpy array in Keras layout}."""
    with open(os.path.join(weights_dir, 'manifest.json')) as f:
        manifest = json.load(f)
    if manifest.get('format') != 'tlsweep-keras-weights/1':
        raise ValueError(f"{weights_dir}/manifest.json: expected format tlsweep-keras-weights/1, got {manifest.get('format')!r}")
    blob = np.fromfile(os.path.join(weights_dir, manifest['bin']), dtype='<f4')
    values = {}
    for layer in manifest['layers']:
        for w in layer['weights']:
            start = w['offset'] // 4
            values[w['name']] = blob[start:start + w['size']].reshape(w['shape'])
    return manifest, values


def keras_modules(features):
    """{Keras layer name: torch module holding its weights} for torchvision's mobilenet_v2().features."""
    m = {
        'Conv1': features[0][0], 'bn_Conv1': features[0][1],
        'expanded_conv_depthwise': features[1].conv[0][0], 'expanded_conv_depthwise_BN': features[1].conv[0][1],
        'expanded_conv_project': features[1].conv[1], 'expanded_conv_project_BN': features[1].conv[2],
        'Conv_1': features[18][0], 'Conv_1_bn': features[18][1],
    }
    for i in range(1, 17):
        c = features[i + 1].conv
        p = f'block_{i}_'
        m.update({
            p + 'expand': c[0][0], p + 'expand_BN': c[0][1],
            p + 'depthwise': c[1][0], p + 'depthwise_BN': c[1][1],
            p + 'project': c[2], p + 'project_BN': c[3],
        })
    return m


def _parent_slots(features):
    """{Keras name of a stride-2 conv: (container, index)} so it can be wrapped with its padding."""
    slots = {'Conv1': (features[0], 0)}
    for i in range(1, 17):
        slots[f'block_{i}_depthwise'] = (features[i + 1].conv[1], 0)
    return slots


def _assign(param, value, what):
    t = torch.from_numpy(np.ascontiguousarray(value))
    if tuple(param.shape) != tuple(t.shape):
        raise ValueError(f'{what}: torch expects shape {tuple(param.shape)}, Keras weight gives {tuple(t.shape)}')
    with torch.no_grad():
        param.copy_(t)


def build_features(manifest, values, image_size, keras_padding=True):
    """torchvision mobilenet_v2 features with the Keras weights; returns (features, {Keras layer: module}).

    keras_padding=False keeps torchvision's symmetric padding (wrong for even
    sizes; the port check uses it to show that it would notice).
    """
    net = torchvision.models.mobilenet_v2(weights=None, norm_layer=lambda c: nn.BatchNorm2d(c, eps=KERAS_BN_EPSILON))
    features = net.features
    modules = keras_modules(features)
    slots = _parent_slots(features)
    layers = manifest['layers']
    used = set()
    spatial = image_size
    for k, layer in enumerate(layers):
        name, cls, cfg = layer['name'], layer['className'], layer['config']
        if cls == 'ZeroPadding2D':
            conv_name = layers[k + 1]['name']
            conv = modules[conv_name]
            if tuple(conv.stride) != (2, 2):
                raise ValueError(f'{conv_name}: expected a stride-2 convolution after {name}')
            if keras_padding:
                parent, idx = slots[conv_name]
                conv.padding = (0, 0)
                parent[idx] = nn.Sequential(nn.ZeroPad2d(correct_pad(spatial)), conv)
            spatial = math.ceil(spatial / 2)
            continue
        if cls == 'ReLU' and cfg.get('maxValue') != 6:
            raise ValueError(f'{name}: expected ReLU(max_value=6) (torchvision ReLU6), got max_value {cfg.get("maxValue")}')
        if not layer['weights']:
            continue
        mod = modules.get(name)
        if mod is None:
            raise ValueError(f'Keras layer {name} ({cls}) has weights but no torch module')
        w = {x['name'].split('/')[-1]: values[x['name']] for x in layer['weights']}
        if cls == 'Conv2D':
            _assign(mod.weight, w['kernel'].transpose(3, 2, 0, 1), f'{name}/kernel')
            if 'bias' in w or mod.bias is not None:
                raise ValueError(f'{name}: MobileNetV2 convolutions have no bias')
        elif cls == 'DepthwiseConv2D':
            _assign(mod.weight, w['depthwise_kernel'].transpose(2, 3, 0, 1), f'{name}/depthwise_kernel')
        elif cls == 'BatchNormalization':
            if abs(cfg.get('epsilon', 0) - KERAS_BN_EPSILON) > 1e-12:
                raise ValueError(f'{name}: expected epsilon {KERAS_BN_EPSILON}, got {cfg.get("epsilon")}')
            _assign(mod.weight, w['gamma'], f'{name}/gamma')
            _assign(mod.bias, w['beta'], f'{name}/beta')
            _assign(mod.running_mean, w['moving_mean'], f'{name}/moving_mean')
            _assign(mod.running_var, w['moving_variance'], f'{name}/moving_variance')
        else:
            raise ValueError(f'Keras layer {name}: unexpected class {cls} with weights')
        used.add(name)
    missing = sorted(set(modules) - used)
    if missing:
        raise ValueError(f'torch modules without Keras weights: {missing}')
    return features, modules


def trainable_layers(manifest, unfreeze):
    """Keras base_model.layers[-unfreeze:] (names), in order; empty for 0."""
    layers = manifest['layers']
    if not 0 <= unfreeze < len(layers):
        raise ValueError(f'unfreeze must be in [0, {len(layers) - 1}], got {unfreeze}')
    return [l['name'] for l in layers[len(layers) - unfreeze:]] if unfreeze else []


class TransferNet(nn.Module):
    """Backbone → GAP → Linear(1280, units) → ReLU → Dropout → Linear(classes), as tlsweep's head."""

    def __init__(self, features, modules, units, classes, dropout):
        super().__init__()
        self.features = features
        self.keras = modules
        self.hidden = nn.Linear(FEATURE_CHANNELS, units)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(units, classes)
        # Keras/tfjs initialisers of the head (head.ts): he_normal (truncated), glorot_uniform, zero biases.
        std = math.sqrt(2.0 / FEATURE_CHANNELS)
        nn.init.trunc_normal_(self.hidden.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.hidden.bias)
        nn.init.xavier_uniform_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x):
        f = self.features(x).mean(dim=(2, 3))
        return self.output(self.dropout(torch.relu(self.hidden(f))))

    def freeze_backbone(self, manifest, unfreeze):
        """requires_grad only for the modules of the top `unfreeze` Keras layers (and the head)."""
        for p in self.features.parameters():
            p.requires_grad_(False)
        for name in trainable_layers(manifest, unfreeze):
            mod = self.keras.get(name)
            if mod is not None:
                for p in mod.parameters():
                    p.requires_grad_(True)

    def train_keras_style(self):
        """Training mode with every BatchNorm in inference mode (Keras fine-tuning guide; tlsweep's default)."""
        self.train()
        for m in self.features.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self


def read_tensor_file(data_dir, manifest_name='data.json'):
    """Tensors the bench exported: {name: np.ndarray} (float32 NHWC images, int32 labels) and the manifest."""
    with open(os.path.join(data_dir, manifest_name)) as f:
        manifest = json.load(f)
    path = os.path.join(data_dir, manifest['bin'])
    out = {}
    for name, t in manifest['tensors'].items():
        dtype = {'float32': '<f4', 'int32': '<i4'}[t['dtype']]
        count = int(np.prod(t['shape'])) if t['shape'] else 1
        out[name] = np.fromfile(path, dtype=dtype, count=count, offset=t['offset']).reshape(t['shape'])
    return manifest, out


def nchw(x):
    """NHWC numpy float32 → contiguous NCHW torch tensor."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
