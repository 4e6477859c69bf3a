/// Top-k predictions as labelled score bars.
library;

import 'package:flutter/material.dart';
import 'package:mobiletrain_client/on_device.dart';

/// Shows [predictions] (best first) with their scores as bars.
class PredictionList extends StatelessWidget {
  /// Creates the list; [dense] shrinks it for the camera overlay.
  const PredictionList({super.key, required this.predictions, this.dense = false, this.color});

  /// Predictions, best first.
  final List<Prediction> predictions;

  /// Smaller text and bars.
  final bool dense;

  /// Text colour (the camera overlay uses white).
  final Color? color;

  @override
  Widget build(BuildContext context) {
    final theme = Theme.of(context);
    final style = (dense ? theme.textTheme.bodyMedium : theme.textTheme.titleMedium)?.copyWith(color: color);
    return Column(
      mainAxisSize: MainAxisSize.min,
      crossAxisAlignment: CrossAxisAlignment.stretch,
      children: [
        for (final (i, p) in predictions.indexed)
          Padding(
            padding: EdgeInsets.symmetric(vertical: dense ? 2 : 4),
            child: Column(
              crossAxisAlignment: CrossAxisAlignment.stretch,
              children: [
                Row(
                  children: [
                    Expanded(
                      child: Text(
                        p.label,
                        style: i == 0 ? style?.copyWith(fontWeight: FontWeight.bold) : style,
                        overflow: TextOverflow.ellipsis,
                      ),
                    ),
                    Text('${(p.score * 100).toStringAsFixed(1)} %', style: style),
                  ],
                ),
                const SizedBox(height: 2),
                LinearProgressIndicator(
                  value: p.score.clamp(0.0, 1.0),
                  minHeight: dense ? 4 : 6,
                  borderRadius: BorderRadius.circular(3),
                ),
              ],
            ),
          ),
      ],
    );
  }
}
