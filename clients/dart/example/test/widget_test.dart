// Also keeps `flutter create .` from adding its counter-app template test.
import 'package:flutter/material.dart';
import 'package:flutter_test/flutter_test.dart';
import 'package:mobiletrain_client/on_device.dart';
import 'package:mobiletrain_example/src/prediction_list.dart';

void main() {
  testWidgets('PredictionList shows labels and percentages, best first', (tester) async {
    await tester.pumpWidget(
      const MaterialApp(
        home: Scaffold(
          body: PredictionList(
            predictions: [
              Prediction(label: 'rose', index: 0, score: 0.875),
              Prediction(label: 'tulip', index: 1, score: 0.1),
            ],
          ),
        ),
      ),
    );
    expect(find.text('rose'), findsOneWidget);
    expect(find.text('87.5 %'), findsOneWidget);
    expect(find.text('tulip'), findsOneWidget);
    expect(find.byType(LinearProgressIndicator), findsNWidgets(2));
  });
}
