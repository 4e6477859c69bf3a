/// App-wide state: settings, the client, the upload queue and the model.
///
/// Pages read it through [AppScope] and rebuild when it notifies.
library;

import 'dart:async';
import 'dart:io';
import 'dart:isolate';
import 'dart:typed_data';

import 'package:flutter/widgets.dart';
import 'package:mobiletrain_client/on_device.dart';
import 'package:path_provider/path_provider.dart';

import 'settings_store.dart';

/// Where the connection stands.
enum ConnectionStatus {
  /// Settings are incomplete or the user has not connected yet.
  disconnected,

  /// Reading the project and opening the queue.
  connecting,

  /// The project was read; uploads and training are available.
  connected,

  /// The last attempt failed; [AppState.error] says why.
  failed,
}

/// One photo the user queued in this session, for the thumbnail strip.
class QueuedPhoto {
  /// Creates an entry.
  const QueuedPhoto({required this.clientId, required this.label, required this.thumbnail});

  /// The queue's idempotent id for the sample.
  final String clientId;

  /// The label it was uploaded with.
  final String label;

  /// Encoded bytes shown as the thumbnail.
  final Uint8List thumbnail;
}

/// State shared by every page.
class AppState extends ChangeNotifier {
  AppState._(this._store, this.dataDir, this._settings);

  /// Reads the saved settings and connects when they are complete.
  static Future<AppState> load() async {
    final documents = await getApplicationDocumentsDirectory();
    // Queue journal and model cache are app data, not user documents.
    final dataDir = await getApplicationSupportDirectory();
    final store = SettingsStore(documents);
    final state = AppState._(store, dataDir, await store.load());
    if (state.settings.isComplete) unawaited(state.connect());
    return state;
  }

  final SettingsStore _store;

  /// The app support folder (upload journal, model cache).
  final Directory dataDir;

  AppSettings _settings;
  ConnectionStatus _status = ConnectionStatus.disconnected;
  String? _error;
  String? _uploadError;
  MobiletrainClient? _client;
  Project? _project;
  UploadQueue? _queue;
  StreamSubscription<UploadProgress>? _queueSub;
  UploadProgress? _uploadProgress;
  Future<void>? _flushing;
  bool _flushAgain = false;
  ModelManager? _models;
  InstalledModel? _installed;
  ImageClassifier? _classifier;
  ObjectDetector? _detector;
  final Map<String, SampleStatus> _sampleStatus = {};
  final List<QueuedPhoto> _recent = [];
  int _generation = 0;
  bool _disposed = false;

  /// Current settings.
  AppSettings get settings => _settings;

  /// Connection status.
  ConnectionStatus get status => _status;

  /// Why the last connection attempt failed, if it did.
  String? get error => _error;

  /// The client; null until connected.
  MobiletrainClient? get client => _client;

  /// The project; null until connected.
  Project? get project => _project;

  /// The project id or name used in calls.
  String get projectRef => _project?.id ?? _settings.project;

  /// Why the last flush of the upload queue stopped, if it failed.
  String? get uploadError => _uploadError;

  /// Latest upload queue counts; null before the queue reported anything.
  UploadProgress? get uploadProgress => _uploadProgress;

  /// True while the queue is sending.
  bool get isFlushing => _flushing != null;

  /// Photos queued in this session, newest first.
  List<QueuedPhoto> get recentPhotos => List.unmodifiable(_recent);

  /// Server verdict for a queued sample, when known.
  SampleStatus? statusOf(String clientId) => _sampleStatus[clientId];

  /// The model manager; null until connected.
  ModelManager? get models => _models;

  /// The model on the device, if one was downloaded.
  InstalledModel? get installedModel => _installed;

  /// The on-device classifier for [installedModel] (null for a detector).
  ImageClassifier? get classifier => _classifier;

  /// The on-device detector when [installedModel] is an object-detection model.
  ObjectDetector? get detector => _detector;

  /// Saves [settings] and reconnects when the connection fields changed.
  Future<void> updateSettings(AppSettings settings) async {
    final old = _settings;
    _settings = settings;
    notifyListeners();
    await _store.save(settings);
    final reconnect =
        old.host != settings.host ||
        old.grpcPort != settings.grpcPort ||
        old.httpPort != settings.httpPort ||
        old.useTls != settings.useTls ||
        old.token != settings.token ||
        old.project != settings.project ||
        old.preferRest != settings.preferRest ||
        old.modelFormat != settings.modelFormat ||
        _status != ConnectionStatus.connected;
    if (reconnect && settings.isComplete) await connect();
  }

  /// (Re)connects: reads the project, opens its upload queue and model cache.
  Future<void> connect() async {
    final generation = ++_generation;
    await _closeConnection();
    _status = ConnectionStatus.connecting;
    _error = null;
    notifyListeners();
    final client = MobiletrainClient(_settings.toConnectionSettings());
    try {
      final project = await client.getProject(_settings.project);
      final queueDir = await _folder(['upload_queue', project.id]);
      final queue = await UploadQueue.open(client, directory: queueDir, project: project.id);
      // The manager adds <project>/<format> below this folder itself.
      final modelDir = await _folder(['models']);
      final models = ModelManager(
        client.transport,
        cacheDir: modelDir,
        project: project.id,
        format: _settings.modelFormat,
      );
      if (generation != _generation) {
        // A newer connect() started meanwhile; drop this one.
        await queue.close();
        await client.close();
        return;
      }
      _client = client;
      _project = project;
      _queue = queue;
      _models = models;
      _uploadProgress = queue.current;
      _queueSub = queue.progress.listen(_onUploadProgress);
      _status = ConnectionStatus.connected;
      notifyListeners();
      await _loadInstalledModel();
      // Samples left over from an earlier run go out now.
      unawaited(flushUploads());
    } on Object catch (e) {
      await client.close();
      if (generation != _generation) return;
      _status = ConnectionStatus.failed;
      _error = describeError(e);
      notifyListeners();
    }
  }

  /// Adds a photo to the persistent upload queue and starts sending.
  ///
  /// With [AppSettings.downscaleUploads] the photo is first resized to the
  /// project's input spec (on a background isolate).
  Future<String> enqueuePhoto(Uint8List bytes, String label) async {
    final queue = _queue;
    final project = _project;
    if (queue == null || project == null) {
      throw StateError('Not connected to a server.');
    }
    final data = _settings.downscaleUploads
        ? await _prepareUpload(ImagePreprocessor(project.inputSpec), bytes)
        : bytes;
    final mediaType = isJpegData(data) ? 'image/jpeg' : (isPngData(data) ? 'image/png' : '');
    final clientId = await queue.add(data, label: label, mediaType: mediaType);
    _recent.insert(0, QueuedPhoto(clientId: clientId, label: label, thumbnail: data));
    // Thumbnails are the uploaded bytes: keep only a few in memory.
    if (_recent.length > 12) _recent.removeLast();
    notifyListeners();
    unawaited(flushUploads());
    return clientId;
  }

  // Static so the isolate closure captures nothing but its arguments.
  static Future<Uint8List> _prepareUpload(ImagePreprocessor preprocessor, Uint8List bytes) =>
      Isolate.run(() => preprocessor.prepareForUpload(bytes));

  /// Sends what is pending (and retries failed samples).
  ///
  /// Calls while a flush runs are folded into one more flush afterwards.
  Future<void> flushUploads() {
    final running = _flushing;
    if (running != null) {
      _flushAgain = true;
      return running;
    }
    if (_queue == null) return Future.value();
    // whenComplete runs after this method returned, so _flushing is set first.
    final future = _flushLoop().whenComplete(() {
      _flushing = null;
      notifyListeners();
    });
    _flushing = future;
    notifyListeners();
    return future;
  }

  Future<void> _flushLoop() async {
    _uploadError = null;
    try {
      do {
        _flushAgain = false;
        final queue = _queue;
        if (queue == null) return;
        await queue.flush();
      } while (_flushAgain);
    } on Object catch (e) {
      _uploadError = describeError(e);
    }
  }

  /// Puts failed samples back into the queue and sends them again.
  Future<void> retryFailedUploads() async {
    final queue = _queue;
    if (queue == null) return;
    await queue.retryFailed();
    notifyListeners();
    await flushUploads();
  }

  /// Failed samples (the server refused them for good), oldest first.
  List<QueuedSample> get failedUploads => _queue?.failed ?? const [];

  /// Deletes the failed samples from the device.
  Future<void> discardFailedUploads() async {
    await _queue?.discardFailed();
    notifyListeners();
  }

  void _onUploadProgress(UploadProgress progress) {
    _uploadProgress = progress;
    final last = progress.last;
    if (last != null) _sampleStatus[last.clientId] = last.status;
    notifyListeners();
  }

  /// Asks the server whether a newer model than the installed one exists.
  Future<UpdateCheck> checkForModelUpdate() {
    final models = _models;
    if (models == null) throw StateError('Not connected to a server.');
    return models.checkForUpdate();
  }

  /// Downloads (resuming a partial file), verifies and switches to the newest model.
  Future<InstalledModel> downloadModel({void Function(int received, int total)? onProgress}) async {
    final models = _models;
    if (models == null) throw StateError('Not connected to a server.');
    final installed = await models.update(onProgress: onProgress);
    await _useModel(installed);
    return installed;
  }

  Future<void> _loadInstalledModel() async {
    final models = _models;
    if (models == null) return;
    try {
      final installed = await models.current();
      if (installed != null) await _useModel(installed);
    } on Object catch (e) {
      // A broken cache only means "no model yet"; downloading fixes it.
      debugPrint('No usable cached model: ${describeError(e)}');
    }
  }

  Future<void> _useModel(InstalledModel installed) async {
    // An object-detection project's model has four outputs (boxes, classes,
    // scores, count): it runs as an ObjectDetector, not a classifier.
    final detection = installed.manifest.json['task'] == 'object-detection';
    final classifier = detection ? null : await ImageClassifier.load(installed);
    final detector = detection ? await ObjectDetector.load(installed) : null;
    _classifier?.close();
    _detector?.close();
    _classifier = classifier;
    _detector = detector;
    _installed = installed;
    notifyListeners();
  }

  Future<Directory> _folder(List<String> parts) async {
    final sep = Platform.pathSeparator;
    final dir = Directory([dataDir.path, ...parts.map(_safeName)].join(sep));
    return dir.create(recursive: true);
  }

  static String _safeName(String s) => s.replaceAll(RegExp(r'[^A-Za-z0-9._-]'), '_');

  Future<void> _closeConnection() async {
    await _queueSub?.cancel();
    _queueSub = null;
    _classifier?.close();
    _classifier = null;
    _detector?.close();
    _detector = null;
    _installed = null;
    _models = null;
    _uploadProgress = null;
    _sampleStatus.clear();
    _recent.clear();
    final queue = _queue;
    _queue = null;
    await queue?.close();
    final client = _client;
    _client = null;
    _project = null;
    await client?.close();
  }

  @override
  void notifyListeners() {
    // Background work (a flush, a download) may finish after dispose.
    if (!_disposed) super.notifyListeners();
  }

  @override
  void dispose() {
    _disposed = true;
    _generation++;
    unawaited(_closeConnection());
    super.dispose();
  }
}

/// A short, user-facing text for an error from the client library or the platform.
String describeError(Object error) => switch (error) {
  MobiletrainException(:final name, :final message, :final code) =>
    message.isEmpty ? '$name ($code)' : '$message ($name)',
  FileSystemException(:final message, :final path) => '$message${path == null ? '' : ': $path'}',
  StateError(:final message) => message,
  FormatException(:final message) => message,
  _ => error.toString(),
};

/// Makes [AppState] available to the widget tree and rebuilds dependents when it changes.
class AppScope extends InheritedNotifier<AppState> {
  /// Provides [state] to [child].
  const AppScope({super.key, required AppState state, required super.child}) : super(notifier: state);

  /// The nearest [AppState]; the caller rebuilds when it notifies.
  static AppState of(BuildContext context) {
    final scope = context.dependOnInheritedWidgetOfExactType<AppScope>();
    assert(scope != null, 'No AppScope above this widget.');
    return scope!.notifier!;
  }

  /// The nearest [AppState] without subscribing to changes (for callbacks).
  static AppState read(BuildContext context) {
    final scope = context.getInheritedWidgetOfExactType<AppScope>();
    assert(scope != null, 'No AppScope above this widget.');
    return scope!.notifier!;
  }
}
