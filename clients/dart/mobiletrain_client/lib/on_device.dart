/// The native-only half of the client (Android, iOS, desktop): what needs a
/// file system (`dart:io`) or the TensorFlow Lite runtime (`tflite_flutter`, FFI).
///
/// * `UploadQueue`: samples persisted on the device until the server has them;
/// * `ModelManager`: update checks, resumable sha256-checked downloads, an
///   atomic switch between cached versions;
/// * `ImageClassifier`: runs the model as its manifest says;
/// * `ObjectDetector`: runs an object-detection model, boxes in image pixels;
/// * `OnDeviceTrainer` and `FederatedParticipant`: training the exported
///   train-step model on the device, alone or in federated rounds.
///
/// It exports `mobiletrain_client.dart` as well, so a native app imports only this.
///
/// ```dart
/// final client = MobiletrainClient(const ConnectionSettings(host: '192.168.1.20', token: 'mt_...'));
/// final queue = await UploadQueue.open(client, directory: dir, project: 'flowers');
/// await queue.add(jpegBytes, label: 'rose');
/// await queue.flush();
/// final models = ModelManager(client.transport, cacheDir: dir, project: 'flowers', format: ModelFormat.float32);
/// final classifier = await ImageClassifier.load(await models.update());
/// ```
library;

export 'mobiletrain_client.dart';
export 'src/federated.dart';
export 'src/audio.dart';
export 'src/detection.dart';
export 'src/inference.dart';
export 'src/model_manager.dart';
export 'src/on_device_training.dart';
export 'src/sensor.dart';
export 'src/upload_queue.dart';
