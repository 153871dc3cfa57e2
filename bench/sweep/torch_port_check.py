"""Checks the torch port of tlsweep's MobileNetV2 against tfjs on the same images.

    /usr/bin/python3 bench/sweep/torch_port_check.py --weights DIR --check DIR [--torchvision-padding]

--weights: bench/export-mobilenet-v2-weights.ts output. --check: a tensor
file (check.json + .bin, written by bench/sweep/port-check.ts) holding
`images` [n, H, W, 3] float32 in [0, 1] and `features`, tfjs' `out_relu`
output for them in inference mode. Prints one JSON line: the largest and
mean absolute difference, the tolerance and whether it holds.
--torchvision-padding keeps torchvision's symmetric stride-2 padding instead
of Keras' correct_pad: a wrong port the check must reject.
"""
import argparse
import json
import sys

import numpy as np
import torch

import torch_mobilenet_v2 as port

# out_relu values lie in [0, 6]; the two frameworks sum ~50 layers in different
# orders in float32, which moves them by ~1e-5. A wrong mapping, layout or
# padding moves them by ~1e-1 and more.
TOLERANCE = 1e-3


def check(weights_dir, check_dir, keras_padding=True):
    manifest, values = port.load_keras_weights(weights_dir)
    meta, t = port.read_tensor_file(check_dir, 'check.json')
    images, expected = t['images'], t['features']
    size = images.shape[1]
    features, _ = port.build_features(manifest, values, size, keras_padding=keras_padding)
    features.eval()
    with torch.no_grad():
        got = features(port.nchw(images)).numpy().transpose(0, 2, 3, 1)
    if got.shape != expected.shape:
        return {'ok': False, 'error': f'torch features have shape {list(got.shape)}, tfjs {list(expected.shape)}'}
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    max_abs = float(diff.max())
    return {
        'ok': max_abs <= TOLERANCE,
        'images': int(images.shape[0]),
        'imageSize': int(size),
        'featureShape': list(expected.shape[1:]),
        'maxAbsDiff': max_abs,
        'meanAbsDiff': float(diff.mean()),
        'maxFeature': float(np.abs(expected).max()),
        'tolerance': TOLERANCE,
        'padding': 'keras-correct-pad' if keras_padding else 'torchvision-symmetric',
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True)
    ap.add_argument('--check', required=True)
    ap.add_argument('--torchvision-padding', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(2)
    print(json.dumps(check(a.weights, a.check, keras_padding=not a.torchvision_padding)))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
