/**
 * The names of the input preprocessing modes (implemented in preprocess.ts),
 * without TensorFlow.js, so the coordinator can validate specs that name one.
 * - `unit`: x, unchanged ([0, 1]; what nsfwjs trained its models on, and TF Hub's image convention).
 * - `tf`: x·2 − 1, in [−1, 1] (Keras MobileNet, MobileNetV2, InceptionV3, NASNet).
 * - `torch`: (x − ImageNet mean) / ImageNet std, per RGB channel (Keras DenseNet).
 * - `caffe`: RGB → BGR, ×255, minus the ImageNet BGR mean (Keras VGG16, ResNet50).
 * - `raw255`: x·255 (Keras EfficientNet normalises inside the model).
 */
export type PreprocessMode = 'unit' | 'tf' | 'torch' | 'caffe' | 'raw255';

export const PREPROCESS_MODES: readonly PreprocessMode[] = Object.freeze(['unit', 'tf', 'torch', 'caffe', 'raw255']);
