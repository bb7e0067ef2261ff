package io.ensemblestream.bench;

import java.util.List;

/**
 * Soft voting as the aggregator computes it (services/core/fusion: batch.ts, classification.ts),
 * operation for operation, so the results are bit for bit the same: the answering models in
 * ascending model id order (String.compareTo and JavaScript's string comparison both compare UTF-16
 * code units), their weights summed in that order and divided by the sum, then every class's score
 * summed from 0 as w_i * p_i in that order; the label is the argmax, ties to the lowest class index.
 * Java evaluates doubles as IEEE 754 binary64 with no fused multiply-add, as JavaScript does.
 */
final class SoftVote {
  final List<String> models;
  final double[] weights;
  final List<String> classes;
  /** Model indexes (configured order) sorted by model id. */
  private final int[] byId;

  SoftVote(List<String> models, double[] weights, List<String> classes) {
    this.models = models;
    this.weights = weights;
    this.classes = classes;
    this.byId = java.util.stream.IntStream.range(0, models.size())
        .boxed()
        .sorted((x, y) -> models.get(x).compareTo(models.get(y)))
        .mapToInt(Integer::intValue)
        .toArray();
  }

  int indexOf(String modelId) {
    return models.indexOf(modelId);
  }

  /** The fused distribution and the weights used (by configured index, 0 for models not present). */
  static final class Result {
    final double[] probabilities;
    final double[] weightsUsed;
    final int label;

    Result(double[] probabilities, double[] weightsUsed, int label) {
      this.probabilities = probabilities;
      this.weightsUsed = weightsUsed;
      this.label = label;
    }
  }

  /** `probabilities[i]` is model i's distribution, or null when model i gave none; at least one is not null. */
  Result fuse(double[][] probabilities) {
    int k = classes.size();
    double total = 0;
    for (int i : byId) if (probabilities[i] != null) total += weights[i];
    if (!(total > 0)) throw new IllegalStateException("the weights of the present models sum to " + total);
    double[] used = new double[models.size()];
    for (int i : byId) if (probabilities[i] != null) used[i] = weights[i] / total;
    double[] scores = new double[k];
    for (int i : byId) {
      double[] p = probabilities[i];
      if (p == null) continue;
      double wi = used[i];
      for (int c = 0; c < k; c++) scores[c] += wi * p[c];
    }
    int label = 0;
    for (int c = 1; c < k; c++) if (scores[c] > scores[label]) label = c;
    return new Result(scores, used, label);
  }
}
