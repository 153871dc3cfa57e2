"""The user's alternative in `npm run bench:sweep`: the same grid with PyTorch + Optuna.

    /usr/bin/python3 bench/sweep/torch_optuna_sweep.py --weights DIR --data DIR --config FILE [--port-check DIR]

Every trial alone, as Optuna users write it: GridSampler over (unfreeze,
learning rate, dropout); each trial builds the network from the same
pretrained weights as tlsweep (torch_mobilenet_v2.py), trains the head with
Adam for headEpochs with the backbone frozen, then (unfreeze > 0) the top
`unfreeze` Keras layers and the head with a fresh Adam at lr × fineTuneLrFactor
for fineTuneEpochs. The frozen backbone is recomputed on every batch of every
epoch (nothing is cached between epochs or trials). BatchNorm stays in
inference mode throughout, as tlsweep and the Keras fine-tuning guide do.
Data: the exact train/val/test tensors tlsweep builds (bench/sweep/export-dataset.ts).

--config JSON: {"grid": {"unfreeze": [...], "learningRates": [...], "dropouts": [...]},
"headEpochs", "fineTuneEpochs", "fineTuneLrFactor", "batchSize", "headUnits", "seed", "threads"}.
Progress goes to stderr; the last stdout line is JSON.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
from torch import nn
import optuna

import torch_mobilenet_v2 as port
import torch_port_check

# tfjs' Adam uses epsilon 1e-7 (its backend epsilon); torch defaults to 1e-8.
ADAM_EPS = 1e-7


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def evaluate(net, x, y, batch):
    """Mean cross-entropy and accuracy, inference mode."""
    net.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            logits = net(x[i:i + batch])
            loss_sum += nn.functional.cross_entropy(logits, y[i:i + batch], reduction='sum').item()
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    n = x.shape[0]
    return loss_sum / n, correct / n


def fit(net, opt, data, epochs, batch, gen, trial, history, phase):
    x, y = data['train']
    n = x.shape[0]
    for _ in range(epochs):
        t0 = time.perf_counter()
        net.train_keras_style()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            logits = net(x[idx])
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * idx.shape[0]
            correct += (logits.argmax(1) == y[idx]).sum().item()
        val_loss, val_acc = evaluate(net, *data['val'], batch)
        history.append({'phase': phase, 'epoch': len(history) + 1, 'loss': loss_sum / n, 'accuracy': correct / n,
                        'valLoss': val_loss, 'valAccuracy': val_acc, 'seconds': time.perf_counter() - t0})
        trial.report(val_acc, len(history))


def make_objective(cfg, manifest, values, data, classes, image_size, results):
    grid = cfg['grid']

    def objective(trial):
        unfreeze = trial.suggest_categorical('unfreeze', grid['unfreeze'])
        lr = trial.suggest_categorical('learning_rate', grid['learningRates'])
        dropout = trial.suggest_categorical('dropout', grid['dropouts'])
        t0 = time.perf_counter()
        torch.manual_seed(cfg['seed'])
        gen = torch.Generator().manual_seed(cfg['seed'])
        features, modules = port.build_features(manifest, values, image_size)
        net = port.TransferNet(features, modules, cfg['headUnits'], classes, dropout)
        history = []
        net.freeze_backbone(manifest, 0)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr, eps=ADAM_EPS)
        fit(net, opt, data, cfg['headEpochs'], cfg['batchSize'], gen, trial, history, 'head')
        if unfreeze > 0 and cfg['fineTuneEpochs'] > 0:
            net.freeze_backbone(manifest, unfreeze)
            opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr * cfg['fineTuneLrFactor'], eps=ADAM_EPS)
            fit(net, opt, data, cfg['fineTuneEpochs'], cfg['batchSize'], gen, trial, history, 'finetune')
        val_loss, val_acc = evaluate(net, *data['val'], cfg['batchSize'])
        test_loss, test_acc = evaluate(net, *data['test'], cfg['batchSize'])
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        row = {'trial': trial.number, 'unfreeze': unfreeze, 'learningRate': lr, 'dropout': dropout,
               'valAccuracy': val_acc, 'valLoss': val_loss, 'testAccuracy': test_acc, 'testLoss': test_loss,
               'epochs': len(history), 'seconds': time.perf_counter() - t0, 'trainableParams': trainable,
               'history': history}
        results.append(row)
        log(f'torch trial {trial.number}: unfreeze={unfreeze} lr={lr} dropout={dropout} val {val_acc:.4f} '
            f'test {test_acc:.4f} in {row["seconds"]:.1f}s')
        trial.set_user_attr('test_accuracy', test_acc)
        return val_acc

    return objective


def load_data(data_dir):
    meta, t = port.read_tensor_file(data_dir, 'data.json')
    data = {s: (port.nchw(t[f'{s}X']), torch.from_numpy(t[f'{s}Y'].astype(np.int64))) for s in ('train', 'val', 'test')}
    return meta, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True)
    ap.add_argument('--data', required=True)
    ap.add_argument('--config', required=True)
    ap.add_argument('--port-check', help='check dir from port-check.ts: refuse to run when the port is off')
    a = ap.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    torch.set_num_threads(cfg.get('threads', 2))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {'torch': torch.__version__, 'torchvision': port.torchvision.__version__, 'optuna': optuna.__version__,
           'threads': torch.get_num_threads()}
    if a.port_check:
        check = torch_port_check.check(a.weights, a.port_check)
        out['portCheck'] = check
        log(f'port check: max |torch - tfjs| = {check.get("maxAbsDiff")} (tolerance {check.get("tolerance")})')
        if not check['ok']:
            print(json.dumps({**out, 'error': 'the torch port does not reproduce tfjs features'}))
            sys.exit(1)

    # Timed like tlsweep's sweep: from having the data and weights at hand to the last trial's result.
    started = time.perf_counter()
    meta, data = load_data(a.data)
    manifest, values = port.load_keras_weights(a.weights)
    classes = len(meta['classNames'])
    image_size = data['train'][0].shape[2]
    grid = cfg['grid']
    space = {'unfreeze': grid['unfreeze'], 'learning_rate': grid['learningRates'], 'dropout': grid['dropouts']}
    n_trials = len(grid['unfreeze']) * len(grid['learningRates']) * len(grid['dropouts'])
    study = optuna.create_study(direction='maximize', sampler=optuna.samplers.GridSampler(space, seed=cfg['seed']),
                                pruner=optuna.pruners.NopPruner())
    results = []
    study.optimize(make_objective(cfg, manifest, values, data, classes, image_size, results), n_trials=n_trials)
    out.update({'wallSeconds': time.perf_counter() - started, 'trials': results,
                'sizes': {s: int(data[s][0].shape[0]) for s in data}})
    print(json.dumps(out))


if __name__ == '__main__':
    main()
