/// Platforms without `dart:io` (the web): the browser's HTTP client, which
/// trusts what the browser trusts (a pinned certificate cannot apply).
library;

import 'package:http/http.dart' as http;

import '../settings.dart';

/// The HTTP client for [settings].
http.Client createHttpClient(ConnectionSettings settings) => http.Client();
