/// Platforms with `dart:io` (Android, iOS, desktop): the native gRPC transport.
library;

import '../settings.dart';
import '../transport.dart';
import 'grpc_transport.dart';

/// A [GrpcTransport] to the server of [settings].
MobiletrainTransport? createGrpcTransport(ConnectionSettings settings) => GrpcTransport(settings);
