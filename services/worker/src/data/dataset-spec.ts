/**
 * Where a trial's images come from. Validated by the coordinator (see
 * services/coordinator/src/spec), loaded by the worker (this folder): a
 * worker may see a filesystem the coordinator cannot, so existence of paths
 * is checked where the data is read.
 */
export type DatasetSpec = FashionMnistDatasetSpec | FolderDatasetSpec | SyntheticDatasetSpec;

/** Fashion-MNIST from gzipped IDX files (Debian: dataset-fashion-mnist). */
export interface FashionMnistDatasetSpec {
  kind: 'fashion-mnist';
  /** @default '/usr/share/datasets/fashion-mnist' */
  dir?: string;
  /** Images drawn per class (stratified) from the official training set. @default 100 */
  perClass?: number;
  /**
   * Where the test split comes from.
   * - `split`: drawn from the `perClass` sample by `split.testFraction`
   *   (stratified, seeded), as for every other dataset.
   * - `official`: all 10,000 images of the official test files (`t10k-*`).
   *   Then all `perClass` images per class are training images, and the
   *   validation split is `round(perClass × split.valFraction)` further images
   *   per class drawn from the rest of the official training set (disjoint
   *   from the training images); `split.testFraction` is not used.
   * @default 'split'
   */
  test?: FashionMnistTestSource;
}

/** @see FashionMnistDatasetSpec.test */
export type FashionMnistTestSource = 'split' | 'official';

/** A folder of class sub-folders of PNG/JPEG images (Keras flow_from_directory layout). */
export interface FolderDatasetSpec {
  kind: 'folder';
  path: string;
  /** At most this many images per class; all when absent. */
  perClass?: number;
}

/** Generated images whose class is recoverable from simple visual patterns; for tests. */
export interface SyntheticDatasetSpec {
  kind: 'synthetic';
  /** @default 3 */
  classes?: number;
  /** @default 40 */
  perClass?: number;
  /** @default 0 */
  seed?: number;
}

/** How images are split into train / validation / test, stratified by class. */
export interface SplitOptions {
  /** @default 0.15 */
  valFraction: number;
  /** @default 0.15 */
  testFraction: number;
  seed: number;
}
