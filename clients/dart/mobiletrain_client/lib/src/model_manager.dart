/// Keeps the project's current model on the device: update checks, resumable
/// sha256-checked downloads, an on-disk cache and an atomic switch.
///
/// Cache layout under `cacheDir`:
///
/// ```text
/// <project>/<format>/v<version>-<sha256>.tflite        installed files
/// <project>/<format>/v<version>-<sha256>.tflite.part   a download in progress
/// <project>/<format>/current.json                      pointer to the current file
/// ```
///
/// `current.json` is replaced atomically (temp file + rename) and only after
/// the new file's sha256 matched, so the app always finds a complete model;
/// the previous model stays until the next switch, for [ModelManager.rollback].
/// A `.part` file carries the expected sha256 in its name, so a download cut
/// by a crash or a lost connection resumes from its length after a restart.
library;

import 'dart:async';
import 'dart:convert';
import 'dart:io';

import 'package:crypto/crypto.dart';

import 'errors.dart';
import 'models.dart';
import 'preprocess.dart';
import 'settings.dart';
import 'transport.dart';

/// A model file on the device with the manifest that describes it.
class InstalledModel {
  /// Describes one installed file.
  const InstalledModel({
    required this.file,
    required this.manifest,
    required this.version,
    required this.sha256,
    required this.format,
  });

  /// The model file (complete and checked against [sha256]).
  final File file;

  /// Labels, input spec, per-format tensor details.
  final Manifest manifest;

  /// The model version the file belongs to.
  final int version;

  /// Hex sha256 of [file].
  final String sha256;

  /// The file's format.
  final ModelFormat format;
}

/// Called while a download runs: bytes on disk so far and the file size.
typedef DownloadProgress = void Function(int received, int total);

/// Downloads and caches one project's model in one format.
///
/// ```dart
/// final models = ModelManager(client.transport, cacheDir: dir, project: 'flowers');
/// final installed = await models.update(onProgress: (got, total) {});
/// ```
class ModelManager {
  /// A manager for [project]'s [format] files under [cacheDir].
  ///
  /// Calls and downloads that fail with a retryable error are retried as
  /// [retry] says; an interrupted download resumes from where it stopped.
  ModelManager(
    this.transport, {
    required Directory cacheDir,
    required this.project,
    this.format = ModelFormat.float32,
    this.retry = const RetryPolicy(),
  }) : directory = Directory(_join(_join(cacheDir.path, _safeName(project)), format.wireName));

  /// The server connection.
  final MobiletrainTransport transport;

  /// Project id or name.
  final String project;

  /// The format this manager keeps.
  final ModelFormat format;

  /// Retries of failed calls and interrupted downloads.
  final RetryPolicy retry;

  /// Where this project's files of [format] live.
  final Directory directory;

  Future<InstalledModel>? _updating;

  File get _pointer => File(_join(directory.path, 'current.json'));

  String get _extension => switch (format) {
        ModelFormat.keras => '.keras',
        ModelFormat.headWeights => '.bin',
        _ => '.tflite',
      };

  /// File name of [version] with [sha256].
  String fileNameFor(int version, String sha256) => 'v$version-$sha256$_extension';

  /// The installed model, or null when none is (or its file went missing).
  Future<InstalledModel?> current() async => (await _readPointer())?.current;

  /// The model installed before [current], if it is still on disk.
  Future<InstalledModel?> previous() async => (await _readPointer())?.previous;

  /// Asks the server whether a newer file than the installed one exists.
  Future<UpdateCheck> checkForUpdate() async {
    final installed = await current();
    return transport.checkForUpdate(
      project,
      format: format,
      currentSha256: installed?.sha256 ?? '',
      currentVersion: installed?.version ?? 0,
    );
  }

  /// Installs the server's current model unless the device has it already,
  /// and returns what is installed afterwards.
  ///
  /// The download resumes after errors (and across app restarts), the file is
  /// checked against its sha256 before the switch, and the switch is atomic:
  /// on any failure the previously installed model stays current. Concurrent
  /// calls share one download.
  Future<InstalledModel> update({DownloadProgress? onProgress}) {
    final running = _updating;
    if (running != null) return running;
    final future = _update(onProgress).whenComplete(() => _updating = null);
    _updating = future;
    return future;
  }

  Future<InstalledModel> _update(DownloadProgress? onProgress) async {
    final installed = await current();
    final check = await retry.run(() => transport.checkForUpdate(
          project,
          format: format,
          currentSha256: installed?.sha256 ?? '',
          currentVersion: installed?.version ?? 0,
        ));
    if (check.notModified && installed != null) return installed;
    final latest = check.latest;
    final artifact = check.artifact;
    if (latest == null || artifact == null) {
      throw MobiletrainException.of(
        ErrorCodes.formatNotFound,
        'the server offered no ${format.wireName} file',
      );
    }
    if (installed != null && installed.sha256 == artifact.sha256) return installed;
    final manifest = await retry.run(
      () => transport.getManifest(project, version: latest.version),
    );
    final file = await _download(latest.version, artifact, onProgress);
    final model = InstalledModel(
      file: file,
      manifest: manifest,
      version: latest.version,
      sha256: artifact.sha256,
      format: format,
    );
    await _switchTo(model, previous: installed);
    await _prune(keep: {_nameOf(file), if (installed != null) _nameOf(installed.file)});
    return model;
  }

  /// Makes the previous model current again (e.g. after a bad update).
  ///
  /// Throws [StateError] when there is no previous model on disk.
  Future<InstalledModel> rollback() async {
    final pointer = await _readPointer();
    final previous = pointer?.previous;
    if (pointer == null || previous == null) {
      throw StateError('there is no previous model to roll back to');
    }
    await _switchTo(previous, previous: pointer.current);
    return previous;
  }

  // --- download -----------------------------------------------------------

  Future<File> _download(int version, Artifact artifact, DownloadProgress? onProgress) async {
    await directory.create(recursive: true);
    final target = File(_join(directory.path, fileNameFor(version, artifact.sha256)));
    // A crash between the rename and the pointer switch leaves a good file.
    if (await target.exists() && await _sha256Of(target) == artifact.sha256) {
      return target;
    }
    final part = File('${target.path}.part');
    var attempt = 0;
    var restartedAfterMismatch = false;
    while (true) {
      attempt++;
      var offset = await part.exists() ? await part.length() : 0;
      if (offset > artifact.size) {
        await part.delete();
        offset = 0;
      }
      final resumed = offset > 0;
      try {
        if (offset < artifact.size) {
          await _fetch(version, artifact, part, offset, onProgress);
        }
      } on MobiletrainException catch (error) {
        if (error.code == ErrorCodes.dataLoss && await part.exists()) {
          await part.delete(); // bytes of some other file: useless for a resume
        }
        if (!error.retryable || attempt >= retry.maxAttempts) rethrow;
        await Future<void>.delayed(retry.delayFor(attempt));
        continue;
      }
      if (await _sha256Of(part) == artifact.sha256) {
        await part.rename(target.path);
        return target;
      }
      await part.delete();
      // A stale or corrupt partial file from an earlier run: start over once.
      if (resumed && !restartedAfterMismatch) {
        restartedAfterMismatch = true;
        continue;
      }
      throw MobiletrainException.of(
        ErrorCodes.dataLoss,
        'the downloaded ${format.wireName} file of version $version does not match its sha256',
      );
    }
  }

  /// Appends the bytes from [offset] to [part]; throws a retryable error when
  /// the stream ends early.
  Future<void> _fetch(
    int version,
    Artifact artifact,
    File part,
    int offset,
    DownloadProgress? onProgress,
  ) async {
    final sink = await part.open(mode: FileMode.append);
    var written = offset;
    try {
      final stream = transport.downloadModel(
        project,
        version: version,
        format: format,
        offset: offset,
      );
      await for (final chunk in stream) {
        final info = chunk.info;
        if (info.sha256.isNotEmpty && info.sha256 != artifact.sha256) {
          throw MobiletrainException.of(
            ErrorCodes.dataLoss,
            'the server sent a different file (sha256 ${info.sha256})',
          );
        }
        var data = chunk.data;
        if (chunk.offset > written) {
          throw MobiletrainException.of(
            ErrorCodes.network,
            'the download skipped from byte $written to ${chunk.offset}',
          );
        }
        if (chunk.offset < written) {
          // Overlap with what is on disk already: keep only the new tail.
          final skip = written - chunk.offset;
          if (skip >= data.length) continue;
          data = data.sublist(skip);
        }
        if (written + data.length > artifact.size) {
          throw MobiletrainException.of(
            ErrorCodes.dataLoss,
            'the server sent more than ${artifact.size} bytes',
          );
        }
        await sink.writeFrom(data);
        written += data.length;
        onProgress?.call(written, artifact.size);
      }
      await sink.flush();
    } finally {
      await sink.close();
    }
    if (written < artifact.size) {
      throw MobiletrainException.of(
        ErrorCodes.network,
        'the download ended at byte $written of ${artifact.size}',
      );
    }
  }

  // --- pointer ------------------------------------------------------------

  Future<void> _switchTo(InstalledModel model, {InstalledModel? previous}) async {
    await directory.create(recursive: true);
    final json = <String, Object?>{
      'schema': 1,
      'project': project,
      'format': format.wireName,
      'current': _entryToJson(model),
      if (previous != null && previous.sha256 != model.sha256) 'previous': _entryToJson(previous),
    };
    final tmp = File('${_pointer.path}.tmp');
    await tmp.writeAsString(const JsonEncoder.withIndent(' ').convert(json), flush: true);
    await tmp.rename(_pointer.path);
  }

  Future<_Pointer?> _readPointer() async {
    final pointer = _pointer;
    if (!await pointer.exists()) return null;
    try {
      final json = jsonDecode(await pointer.readAsString()) as Map<String, Object?>;
      final current = await _entryFromJson(json['current']);
      if (current == null) return null;
      return _Pointer(current, await _entryFromJson(json['previous']));
    } on FormatException {
      return null;
    } on TypeError {
      return null;
    }
  }

  Map<String, Object?> _entryToJson(InstalledModel model) => {
        'file': _nameOf(model.file),
        'version': model.version,
        'sha256': model.sha256,
        'manifest': manifestToJson(model.manifest),
      };

  Future<InstalledModel?> _entryFromJson(Object? json) async {
    if (json is! Map<String, Object?>) return null;
    final file = File(_join(directory.path, json['file']! as String));
    if (!await file.exists()) return null;
    return InstalledModel(
      file: file,
      manifest: manifestFromJson(json['manifest']! as Map<String, Object?>),
      version: (json['version']! as num).toInt(),
      sha256: json['sha256']! as String,
      format: format,
    );
  }

  /// Deletes every file of this project and format except the pointer and
  /// the files named in [keep].
  Future<void> _prune({required Set<String> keep}) async {
    if (!await directory.exists()) return;
    await for (final entity in directory.list(followLinks: false)) {
      if (entity is! File) continue;
      final name = _nameOf(entity);
      if (name == 'current.json' || keep.contains(name)) continue;
      try {
        await entity.delete();
      } on FileSystemException {
        // Still open elsewhere (e.g. on Windows); the next prune retries.
      }
    }
  }
}

class _Pointer {
  _Pointer(this.current, this.previous);

  final InstalledModel current;
  final InstalledModel? previous;
}

/// Hex sha256 of a file, streamed.
Future<String> _sha256Of(File file) async => (await sha256.bind(file.openRead()).first).toString();

String _nameOf(File file) => file.uri.pathSegments.last;

String _join(String dir, String name) =>
    dir.endsWith('/') || dir.endsWith(Platform.pathSeparator) ? '$dir$name' : '$dir/$name';

String _safeName(String name) => name.replaceAll(RegExp(r'[^A-Za-z0-9._-]'), '_');

/// The JSON form of [manifest] the cache stores (the server's document plus
/// the fields the client parsed from it).
Map<String, Object?> manifestToJson(Manifest manifest) => {
      'project_id': manifest.projectId,
      'version': manifest.version,
      'labels': manifest.labels,
      'input': inputSpecToJson(manifest.inputSpec),
      'artifacts': [
        for (final a in manifest.artifacts)
          {'format': a.format.wireName, 'size': a.size, 'sha256': a.sha256},
      ],
      'json': manifest.json,
    };

/// Inverse of [manifestToJson].
Manifest manifestFromJson(Map<String, Object?> json) => Manifest(
      projectId: json['project_id'] as String? ?? '',
      version: (json['version'] as num?)?.toInt() ?? 0,
      labels: [for (final l in json['labels']! as List<Object?>) '$l'],
      inputSpec: inputSpecFromJson(json['input']! as Map<String, Object?>),
      artifacts: [
        for (final a in (json['artifacts'] as List<Object?>? ?? const []))
          if (a case {'format': final String f, 'size': final num size, 'sha256': final String sha})
            if (ModelFormat.tryFromWireName(f) case final format?)
              Artifact(format: format, size: size.toInt(), sha256: sha),
      ],
      json: (json['json'] as Map<String, Object?>?) ?? const {},
    );
