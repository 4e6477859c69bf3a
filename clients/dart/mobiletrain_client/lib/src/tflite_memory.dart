/// Interpreters that leave no native memory behind (tflite_flutter 0.12.1).
///
/// * `InterpreterOptions()` allocates native options that only `delete()`
///   frees; the TFLite C API lets them go right after the interpreter is made
///   (`TfLiteInterpreterCreate`: "can safely destroy it ... immediately after
///   creating the interpreter"), so they are deleted at once.
/// * `Interpreter.fromBuffer` goes through `Model.fromBuffer`, which copies the
///   bytes into `calloc` memory that nothing ever frees (the C API needs the
///   buffer for the interpreter's lifetime, and `Model.delete` does not free
///   it). Bytes are therefore written to a temporary file and loaded with
///   `Interpreter.fromFile` (memory-mapped, released by `Interpreter.close`);
///   the file is removed at once, the mapping stays valid.
library;

import 'dart:io';
import 'dart:typed_data';

import 'package:tflite_flutter/tflite_flutter.dart';

/// An interpreter for the model [file] using [threads] threads.
Interpreter interpreterFromFile(File file, {int threads = 2}) {
  final options = InterpreterOptions()..threads = threads;
  try {
    return Interpreter.fromFile(file, options: options);
  } finally {
    options.delete();
  }
}

/// An interpreter for [model] bytes in memory, without the native copy that
/// `Interpreter.fromBuffer` never frees.
Interpreter interpreterFromBytes(Uint8List model, {int threads = 2}) {
  final dir = Directory.systemTemp.createTempSync('mobiletrain_model');
  try {
    final file = File('${dir.path}/model.tflite')..writeAsBytesSync(model, flush: true);
    return interpreterFromFile(file, threads: threads);
  } finally {
    dir.deleteSync(recursive: true);
  }
}
