/// A persistent upload queue: samples taken offline reach the server later,
/// exactly once, even across app restarts.
library;

import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:math';

import 'client.dart';
import 'errors.dart';
import 'ids.dart';
import 'models.dart';
import 'settings.dart';

/// How far an [UploadQueue] got.
class UploadProgress {
  /// Creates a snapshot.
  const UploadProgress({
    required this.pending,
    required this.sent,
    required this.failed,
    this.last,
  });

  /// Samples waiting to be sent (or being sent).
  final int pending;

  /// Samples the server confirmed (accepted or duplicate) since the queue was created.
  final int sent;

  /// Samples the server refused for good; see [UploadQueue.failed].
  final int failed;

  /// The server's answer for the most recent sample, if any.
  final SampleResult? last;

  @override
  String toString() => 'UploadProgress(pending: $pending, sent: $sent, failed: $failed)';
}

/// A sample in the queue's journal; its bytes live in a file of their own.
class QueuedSample {
  /// Creates an entry.
  const QueuedSample({
    required this.clientId,
    required this.label,
    required this.file,
    required this.size,
    this.mediaType = '',
    this.attempts = 0,
    this.lastError = '',
    this.addedAt,
    this.errorCode = 0,
    this.errorName = '',
  });

  /// Reads a journal entry.
  factory QueuedSample.fromJson(Map<String, Object?> json) => QueuedSample(
        clientId: json['client_id'] as String,
        label: json['label'] as String,
        file: json['file'] as String,
        size: (json['size'] as num?)?.toInt() ?? 0,
        mediaType: json['media_type'] as String? ?? '',
        attempts: (json['attempts'] as num?)?.toInt() ?? 0,
        lastError: json['last_error'] as String? ?? '',
        addedAt: DateTime.tryParse(json['added_at'] as String? ?? ''),
        errorCode: (json['error_code'] as num?)?.toInt() ?? 0,
        errorName: json['error_name'] as String? ?? '',
      );

  /// The idempotency key sent with the sample.
  final String clientId;

  /// The sample's label.
  final String label;

  /// Name of the file holding the bytes, relative to the queue directory.
  final String file;

  /// Size of the bytes.
  final int size;

  /// Optional media type hint (`image/jpeg`...).
  final String mediaType;

  /// Uploads tried so far that failed on the way (network, server busy).
  final int attempts;

  /// The last such failure, for display.
  final String lastError;

  /// When the app queued the sample.
  final DateTime? addedAt;

  /// For failed samples: the server's error code (e.g. 22 = unknown label).
  final int errorCode;

  /// For failed samples: the error's name (e.g. `unknown_label`).
  final String errorName;

  /// A copy with some fields changed.
  QueuedSample copyWith({int? attempts, String? lastError, int? errorCode, String? errorName}) =>
      QueuedSample(
        clientId: clientId,
        label: label,
        file: file,
        size: size,
        mediaType: mediaType,
        attempts: attempts ?? this.attempts,
        lastError: lastError ?? this.lastError,
        addedAt: addedAt,
        errorCode: errorCode ?? this.errorCode,
        errorName: errorName ?? this.errorName,
      );

  /// The journal entry.
  Map<String, Object?> toJson() => {
        'client_id': clientId,
        'label': label,
        'file': file,
        'size': size,
        'media_type': mediaType,
        'attempts': attempts,
        'last_error': lastError,
        'added_at': ?addedAt?.toUtc().toIso8601String(),
        if (errorCode != 0) 'error_code': errorCode,
        if (errorName.isNotEmpty) 'error_name': errorName,
      };
}

/// Samples waiting for the server, kept on the device until it confirms them.
///
/// [add] writes the bytes to a file of their own and records the sample in a
/// JSON journal (written to a temporary file and renamed over the old one, so
/// a crash leaves either the old or the new journal) before it returns. The
/// sample's client id (a UUID) makes every resend idempotent: after a crash
/// between "server stored it" and "journal updated", the next flush gets
/// `duplicate` and the sample leaves the queue. A sample leaves the queue only
/// when the server answered `accepted` or `duplicate`; one the server
/// `rejected` moves to [failed] (bytes kept) until the app retries or
/// discards it. Network failures and rate limits are retried with exponential
/// backoff and jitter.
///
/// One queue per directory; the directory must not be shared with other files.
class UploadQueue {
  UploadQueue._(
    this._client,
    this.directory,
    this.project,
    this.retry,
    this.maxBatchSamples,
    this.maxBatchBytes,
    this._random,
  );

  /// Opens (or creates) the queue of [project] in [directory], e.g. a folder under
  /// path_provider's application support directory.
  ///
  /// Samples left from an earlier run are pending again; call [flush] to send them.
  static Future<UploadQueue> open(
    MobiletrainClient client, {
    required Directory directory,
    required String project,
    RetryPolicy? retry,
    int maxBatchSamples = 32,
    int maxBatchBytes = 3 * 1024 * 1024,
    Random? random,
  }) async {
    final queue = UploadQueue._(
      client,
      directory,
      project,
      retry ?? client.settings.retry,
      maxBatchSamples,
      maxBatchBytes,
      random ?? Random(),
    );
    await queue._load();
    return queue;
  }

  /// Name of the journal file in [directory].
  static const String journalName = 'upload-journal.json';

  static const String _samplesDir = 'samples';

  final MobiletrainClient _client;

  /// Where the journal and the sample files live.
  final Directory directory;

  /// The project samples are uploaded to.
  final String project;

  /// Backoff for network failures and rate limits during [flush].
  final RetryPolicy retry;

  /// Most samples per upload call.
  final int maxBatchSamples;

  /// Most sample bytes per upload call (a single larger sample goes alone).
  final int maxBatchBytes;

  final Random _random;
  final List<QueuedSample> _pending = [];
  final List<QueuedSample> _failed = [];
  final StreamController<UploadProgress> _progress = StreamController.broadcast();
  var _sent = 0;
  SampleResult? _last;
  Future<void> _tail = Future.value();
  Future<UploadProgress>? _flushing;
  var _closed = false;

  /// Progress after every change (sample added, batch answered, sample failed).
  Stream<UploadProgress> get progress => _progress.stream;

  /// The progress now.
  UploadProgress get current =>
      UploadProgress(pending: _pending.length, sent: _sent, failed: _failed.length, last: _last);

  /// Samples waiting to be sent, oldest first.
  List<QueuedSample> get pending => List.unmodifiable(_pending);

  /// Samples the server refused for good (with [QueuedSample.errorCode]), oldest first.
  List<QueuedSample> get failed => List.unmodifiable(_failed);

  /// True while [flush] runs.
  bool get isFlushing => _flushing != null;

  /// Queues [bytes] (an encoded JPEG, PNG or WebP) with [label] and returns its client id.
  ///
  /// The sample is on disk when the future completes. Pass [clientId] to
  /// choose the idempotency key yourself; the default is a new UUID v4.
  Future<String> add(
    List<int> bytes, {
    required String label,
    String? clientId,
    String mediaType = '',
  }) async {
    _checkOpen();
    if (bytes.isEmpty) throw ArgumentError.value(bytes, 'bytes', 'empty sample');
    final id = clientId ?? newClientId();
    return await _locked(() async {
      if (_pending.any((s) => s.clientId == id) || _failed.any((s) => s.clientId == id)) {
        return id; // already queued: adding it again changes nothing, like the server
      }
      final name = '$_samplesDir/${newClientId(_random)}.bin';
      await _writeAtomically(_file(name), bytes);
      _pending.add(QueuedSample(
        clientId: id,
        label: label,
        file: name,
        size: bytes.length,
        mediaType: mediaType,
        addedAt: DateTime.now().toUtc(),
      ));
      await _save();
      _emit();
      return id;
    });
  }

  /// Sends every pending sample, in batches, until none is left.
  ///
  /// Network failures and rate limits are retried with backoff; after
  /// `retry.maxAttempts` failures in a row the last one is thrown and the
  /// samples stay pending (call [flush] again later, e.g. when connectivity
  /// returns). A permanent failure of the whole call (bad token, unknown
  /// project) is thrown at once. Concurrent calls share one run.
  Future<UploadProgress> flush() {
    _checkOpen();
    return _flushing ??= _flush().whenComplete(() => _flushing = null);
  }

  Future<UploadProgress> _flush() async {
    var failures = 0;
    while (!_closed) {
      final batch = await _locked(() async => _nextBatch());
      if (batch.isEmpty) break;
      final uploads = <SampleUpload>[];
      final sending = <QueuedSample>[];
      for (final entry in batch) {
        final file = _file(entry.file);
        if (!await file.exists()) {
          await _locked(() => _fail(entry, ErrorCodes.dataLoss, 'the sample file is gone'));
          continue;
        }
        uploads.add(SampleUpload(
          clientId: entry.clientId,
          label: entry.label,
          bytes: await file.readAsBytes(),
          mediaType: entry.mediaType,
        ));
        sending.add(entry);
      }
      if (uploads.isEmpty) continue;
      try {
        final results = await _client.transport.uploadSamples(project, uploads);
        final unsettled = await _locked(() => _apply(sending, results));
        if (unsettled == 0) {
          failures = 0;
          continue;
        }
        // Some samples came back without a status (or without a result): they stay
        // pending, and are sent again only after a backoff, never in a tight loop.
        throw MobiletrainException(
            ErrorCodes.badResponse,
            ErrorCodes.nameOf(ErrorCodes.badResponse),
            'the server gave no status for $unsettled of ${sending.length} samples',
            retryable: true);
      } on MobiletrainException catch (error) {
        await _locked(() => _noteFailure(sending, error));
        if (!error.retryable) rethrow;
        failures++;
        if (failures >= retry.maxAttempts) rethrow;
        var delay = retry.delayFor(failures, _random);
        final asked = error.retryAfter;
        if (asked != null && asked > delay) delay = asked;
        await Future<void>.delayed(delay);
      }
    }
    return current;
  }

  /// Moves failed samples (all, or those with [clientIds]) back to the queue.
  ///
  /// For example after adding a label to the project or raising a quota.
  Future<void> retryFailed([Iterable<String>? clientIds]) => _locked(() async {
        final ids = clientIds?.toSet();
        final moving = [
          for (final s in _failed)
            if (ids == null || ids.contains(s.clientId)) s,
        ];
        if (moving.isEmpty) return;
        _failed.removeWhere(moving.contains);
        _pending.addAll(
            moving.map((s) => s.copyWith(attempts: 0, lastError: '', errorCode: 0, errorName: '')));
        await _save();
        _emit();
      });

  /// Deletes failed samples (all, or those with [clientIds]) and their bytes.
  Future<void> discardFailed([Iterable<String>? clientIds]) => _locked(() async {
        final ids = clientIds?.toSet();
        final dropping = [
          for (final s in _failed)
            if (ids == null || ids.contains(s.clientId)) s,
        ];
        if (dropping.isEmpty) return;
        _failed.removeWhere(dropping.contains);
        await _save();
        await _deleteFiles(dropping);
        _emit();
      });

  /// The stored bytes of a pending or failed sample (to show it), or null if unknown.
  Future<List<int>?> bytesOf(String clientId) async {
    final entry = [..._pending, ..._failed].where((s) => s.clientId == clientId).firstOrNull;
    if (entry == null) return null;
    final file = _file(entry.file);
    return await file.exists() ? file.readAsBytes() : null;
  }

  /// Stops the queue; an ongoing [flush] ends after its current batch. Samples stay on disk.
  Future<void> close() async {
    _closed = true;
    final flushing = _flushing;
    if (flushing != null) {
      try {
        await flushing;
      } on MobiletrainException {
        // The samples stay pending; the error was reported to flush's caller.
      }
    }
    await _tail;
    await _progress.close();
  }

  // --- internals --------------------------------------------------------------------------

  List<QueuedSample> _nextBatch() {
    final batch = <QueuedSample>[];
    var bytes = 0;
    for (final s in _pending) {
      if (batch.length >= maxBatchSamples) break;
      if (batch.isNotEmpty && bytes + s.size > maxBatchBytes) break;
      batch.add(s);
      bytes += s.size;
    }
    return batch;
  }

  /// Applies the server's [results]; returns how many of [sent] stay pending
  /// because they got no result or no status.
  Future<int> _apply(List<QueuedSample> sent, List<SampleResult> results) async {
    final byId = {for (final r in results) r.clientId: r};
    final done = <QueuedSample>[];
    var unsettled = 0;
    for (final (i, entry) in sent.indexed) {
      final result = byId[entry.clientId] ?? (i < results.length ? results[i] : null);
      if (result == null) {
        unsettled++;
        continue;
      }
      _last = result;
      final index = _pending.indexWhere((s) => s.clientId == entry.clientId);
      if (index < 0) continue;
      switch (result.status) {
        case SampleStatus.accepted || SampleStatus.duplicate:
          _pending.removeAt(index);
          _sent++;
          done.add(entry);
        case SampleStatus.rejected:
          _pending.removeAt(index);
          _failed.add(entry.copyWith(
            errorCode: result.errorCode,
            errorName: result.errorName.isEmpty
                ? ErrorCodes.nameOf(result.errorCode)
                : result.errorName,
            lastError: result.message,
          ));
        case SampleStatus.unspecified:
          unsettled++;
          _pending[index] = entry.copyWith(
              attempts: entry.attempts + 1, lastError: 'the server gave no status');
      }
    }
    // Journal first: a crash now leaves files nobody references, cleaned up on open.
    await _save();
    await _deleteFiles(done);
    _emit();
    return unsettled;
  }

  Future<void> _noteFailure(List<QueuedSample> batch, MobiletrainException error) async {
    for (final entry in batch) {
      final index = _pending.indexWhere((s) => s.clientId == entry.clientId);
      if (index >= 0) {
        _pending[index] = _pending[index]
            .copyWith(attempts: _pending[index].attempts + 1, lastError: error.message);
      }
    }
    await _save();
    _emit();
  }

  Future<void> _fail(QueuedSample entry, int code, String message) async {
    _pending.removeWhere((s) => s.clientId == entry.clientId);
    _failed.add(entry.copyWith(
        errorCode: code, errorName: ErrorCodes.nameOf(code), lastError: message));
    await _save();
    _emit();
  }

  Future<void> _load() async {
    await directory.create(recursive: true);
    await Directory('${directory.path}/$_samplesDir').create(recursive: true);
    final journal = _file(journalName);
    var trusted = true;
    if (await journal.exists()) {
      try {
        final json = jsonDecode(await journal.readAsString()) as Map<String, Object?>;
        final owner = json['project'] as String? ?? project;
        if (owner != project) {
          throw ArgumentError.value(directory.path, 'directory',
              'holds the upload queue of project "$owner", not "$project"');
        }
        _sent = (json['sent'] as num?)?.toInt() ?? 0;
        for (final item in json['pending'] as List<Object?>? ?? const []) {
          _pending.add(QueuedSample.fromJson(item! as Map<String, Object?>));
        }
        for (final item in json['failed'] as List<Object?>? ?? const []) {
          _failed.add(QueuedSample.fromJson(item! as Map<String, Object?>));
        }
      } on ArgumentError {
        rethrow;
      } on Object {
        // Unreadable (never written by this code, which renames atomically): keep the
        // files, start an empty journal, and leave the old one for inspection.
        trusted = false;
        _pending.clear();
        _failed.clear();
        await journal.rename('${journal.path}.corrupt-${DateTime.now().millisecondsSinceEpoch}');
      }
    }
    if (trusted) await _collectGarbage();
  }

  /// Deletes temporary files and sample files the journal does not reference
  /// (left by a crash between writing a file and writing the journal).
  Future<void> _collectGarbage() async {
    final referenced = {for (final s in [..._pending, ..._failed]) _file(s.file).absolute.path};
    await for (final entity in Directory('${directory.path}/$_samplesDir').list()) {
      if (entity is File && !referenced.contains(entity.absolute.path)) {
        await _quietDelete(entity);
      }
    }
    final temp = _file('$journalName.tmp');
    if (await temp.exists()) await _quietDelete(temp);
  }

  Future<void> _save() async {
    final json = {
      'format': 1,
      'project': project,
      'sent': _sent,
      'pending': [for (final s in _pending) s.toJson()],
      'failed': [for (final s in _failed) s.toJson()],
    };
    await _writeAtomically(_file(journalName), utf8.encode(jsonEncode(json)));
  }

  Future<void> _deleteFiles(Iterable<QueuedSample> samples) async {
    for (final s in samples) {
      await _quietDelete(_file(s.file));
    }
  }

  File _file(String name) => File('${directory.path}/$name');

  void _emit() {
    if (!_progress.isClosed) _progress.add(current);
  }

  void _checkOpen() {
    if (_closed) throw StateError('the upload queue is closed');
  }

  /// Runs [body] after every earlier queued change, one at a time.
  Future<T> _locked<T>(Future<T> Function() body) {
    final result = _tail.then((_) => body());
    _tail = result.then<void>((_) {}, onError: (Object _) {});
    return result;
  }
}

/// Writes [bytes] to a temporary file, flushes it, then renames it over [file].
Future<void> _writeAtomically(File file, List<int> bytes) async {
  final temp = File('${file.path}.tmp');
  await temp.writeAsBytes(bytes, flush: true);
  await temp.rename(file.path);
}

Future<void> _quietDelete(File file) async {
  try {
    await file.delete();
  } on FileSystemException {
    // Already gone.
  }
}
