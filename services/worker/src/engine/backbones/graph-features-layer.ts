import * as tf from '@tensorflow/tfjs';

type Shape = Array<number | null>;

/**
 * A frozen tfjs GraphModel as one layer of a LayersModel, so a graph
 * backbone goes through the engine's usual frozen-prefix path (features
 * computed once, pooled, cached, head trained on them). It runs one node of
 * the graph; a 2-D feature vector [n, C] comes out as a 1×1 map [n, 1, 1, C],
 * so global average pooling leaves it as it is and 4-D maps pool as usual.
 *
 * It owns the GraphModel: disposing the layer's last use disposes the graph.
 * It holds no LayerVariables (the graph's weights are constants), so it has
 * no trainable weights and cannot be saved in the layers format.
 */
export class GraphFeaturesLayer extends tf.layers.Layer {
  static className = 'TlsweepGraphFeatures';

  /**
   * @param node the graph node whose output are the features
   * @param featureShape its output without the batch axis, as this layer gives it ([H, W, C]; [1, 1, C] for a vector)
   * @param params the graph's weight count, reported as this layer's parameters
   */
  constructor(
    private readonly graph: tf.GraphModel,
    readonly node: string,
    private readonly featureShape: number[],
    private readonly params: number,
  ) {
    super({ name: 'graph_features', trainable: false });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    return [s[0], ...this.featureShape];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const y = this.graph.execute(x, this.node) as tf.Tensor;
      return y.rank === 2 ? y.reshape([y.shape[0], 1, 1, y.shape[1] as number]) : y;
    });
  }

  override countParams(): number {
    return this.params;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), node: this.node };
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) this.graph.dispose();
    return result;
  }
}
