/// Flutter/Dart client for a mobiletrain server: projects, uploads, training
/// with live progress, model versions and manifests, over gRPC or REST.
///
/// This library runs on every platform, the web included (where it uses REST).
/// The parts that need a file system or the TensorFlow Lite runtime (the
/// persisted upload queue, the model cache, inference, on-device training and
/// federated participation) are in `package:mobiletrain_client/on_device.dart`,
/// which native apps import instead (it exports this library too).
///
/// ```dart
/// final client = MobiletrainClient(const ConnectionSettings(host: '192.168.1.20', token: 'mt_...'));
/// await client.uploadSamples('flowers', [SampleUpload(clientId: newClientId(), label: 'rose', bytes: jpeg)]);
/// final job = await client.startJob('flowers', const TrainingOptions(epochs: 5));
/// await for (final event in client.watchJob(job.id)) { print(event.kind); }
/// ```
library;

export 'src/camera_frames.dart';
export 'src/client.dart';
export 'src/errors.dart';
export 'src/ids.dart';
export 'src/models.dart';
export 'src/preprocess.dart';
export 'src/rest/rest_transport.dart' show RestTransport, SseDecoder, SseMessage;
export 'src/settings.dart';
export 'src/task_specs.dart';
export 'src/transport.dart';
