/// Platforms without `dart:io` (Flutter web): no gRPC transport.
///
/// `client.dart` imports `grpc_factory_io.dart` instead where `dart:io`
/// exists, so web builds never pull in the HTTP/2 gRPC channel.
library;

import '../settings.dart';
import '../transport.dart';

/// Always null here: the client falls back to REST.
MobiletrainTransport? createGrpcTransport(ConnectionSettings settings) => null;
