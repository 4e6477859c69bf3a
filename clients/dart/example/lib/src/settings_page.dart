/// Connection settings: server, ports, TLS, token and project.
library;

import 'package:flutter/material.dart';
import 'package:flutter/services.dart';
import 'package:mobiletrain_client/on_device.dart';

import 'app_state.dart';
import 'connection_payload.dart';
import 'qr_scan_page.dart';
import 'settings_store.dart';

/// Edits [AppSettings]; a device token can be scanned from the dashboard or pasted.
class SettingsPage extends StatefulWidget {
  /// Creates the settings page.
  const SettingsPage({super.key});

  @override
  State<SettingsPage> createState() => _SettingsPageState();
}

class _SettingsPageState extends State<SettingsPage> {
  final _formKey = GlobalKey<FormState>();
  final _host = TextEditingController();
  final _httpPort = TextEditingController();
  final _grpcPort = TextEditingController();
  final _token = TextEditingController();
  final _project = TextEditingController();
  bool _useTls = false;
  bool _preferRest = false;
  bool _downscale = true;
  ModelFormat _format = ModelFormat.float32;
  bool _showToken = false;
  bool _loaded = false;
  bool _saving = false;

  @override
  void didChangeDependencies() {
    super.didChangeDependencies();
    if (!_loaded) {
      _loaded = true;
      _fill(AppScope.read(context).settings);
    }
  }

  @override
  void dispose() {
    for (final c in [_host, _httpPort, _grpcPort, _token, _project]) {
      c.dispose();
    }
    super.dispose();
  }

  void _fill(AppSettings s) {
    _host.text = s.host;
    _httpPort.text = '${s.httpPort}';
    _grpcPort.text = '${s.grpcPort}';
    _token.text = s.token;
    _project.text = s.project;
    _useTls = s.useTls;
    _preferRest = s.preferRest;
    _downscale = s.downscaleUploads;
    _format = s.modelFormat;
  }

  /// The form's values; null while a port field does not hold a number.
  AppSettings? _read() {
    final httpPort = int.tryParse(_httpPort.text.trim());
    final grpcPort = int.tryParse(_grpcPort.text.trim());
    if (httpPort == null || grpcPort == null) return null;
    return AppSettings(
      host: _host.text.trim(),
      httpPort: httpPort,
      grpcPort: grpcPort,
      useTls: _useTls,
      token: _token.text.trim(),
      project: _project.text.trim(),
      preferRest: _preferRest,
      downscaleUploads: _downscale,
      modelFormat: _format,
    );
  }

  Future<void> _save() async {
    final settings = _read();
    if (!(_formKey.currentState?.validate() ?? false) || settings == null) return;
    setState(() => _saving = true);
    try {
      await AppScope.read(context).updateSettings(settings);
    } finally {
      if (mounted) setState(() => _saving = false);
    }
  }

  /// Fills the form from a scanned or pasted text; the user still taps Save.
  void _apply(String text) {
    final messenger = ScaffoldMessenger.of(context);
    try {
      final payload = ConnectionPayload.parse(text);
      // Merge into what is typed so far, so a scan does not undo edits.
      final current = _read() ?? AppScope.read(context).settings;
      setState(() => _fill(current.merge(payload)));
      final host = payload.host;
      final String message;
      if (host == '127.0.0.1' || host == 'localhost' || host == '::1') {
        // The dashboard defaults to its own origin, which a phone cannot reach.
        message = 'The code points at $host: enter the computer\'s LAN address instead.';
      } else if (payload.token != null) {
        message = 'Token and server filled in. Check the gRPC port, then save.';
      } else {
        message = 'Server filled in.';
      }
      messenger.showSnackBar(SnackBar(content: Text(message)));
    } on FormatException catch (e) {
      messenger.showSnackBar(SnackBar(content: Text('Not a mobiletrain code: ${e.message}')));
    }
  }

  Future<void> _scan() async {
    final text = await Navigator.of(
      context,
    ).push<String>(MaterialPageRoute(builder: (_) => const QrScanPage()));
    if (!mounted || text == null) return;
    _apply(text);
  }

  Future<void> _paste() async {
    final data = await Clipboard.getData(Clipboard.kTextPlain);
    if (!mounted) return;
    final text = data?.text;
    if (text == null || text.trim().isEmpty) {
      ScaffoldMessenger.of(context).showSnackBar(const SnackBar(content: Text('The clipboard is empty.')));
      return;
    }
    _apply(text);
  }

  static String? _requiredText(String? v) => (v == null || v.trim().isEmpty) ? 'Required' : null;

  static String? _port(String? v) {
    final port = int.tryParse(v?.trim() ?? '');
    return port == null || port < 1 || port > 65535 ? '1–65535' : null;
  }

  @override
  Widget build(BuildContext context) {
    final state = AppScope.of(context);
    final theme = Theme.of(context);
    return Form(
      key: _formKey,
      child: ListView(
        padding: const EdgeInsets.all(16),
        children: [
          Row(
            children: [
              Expanded(
                child: FilledButton.tonalIcon(
                  onPressed: _scan,
                  icon: const Icon(Icons.qr_code_scanner),
                  label: const Text('Scan QR code'),
                ),
              ),
              const SizedBox(width: 12),
              Expanded(
                child: OutlinedButton.icon(
                  onPressed: _paste,
                  icon: const Icon(Icons.content_paste),
                  label: const Text('Paste'),
                ),
              ),
            ],
          ),
          const SizedBox(height: 16),
          TextFormField(
            controller: _host,
            decoration: const InputDecoration(
              labelText: 'Server host',
              hintText: '192.168.1.20',
              border: OutlineInputBorder(),
            ),
            keyboardType: TextInputType.url,
            autocorrect: false,
            validator: _requiredText,
          ),
          const SizedBox(height: 12),
          Row(
            children: [
              Expanded(
                child: TextFormField(
                  controller: _httpPort,
                  decoration: const InputDecoration(labelText: 'HTTP port', border: OutlineInputBorder()),
                  keyboardType: TextInputType.number,
                  inputFormatters: [FilteringTextInputFormatter.digitsOnly],
                  validator: _port,
                ),
              ),
              const SizedBox(width: 12),
              Expanded(
                child: TextFormField(
                  controller: _grpcPort,
                  decoration: const InputDecoration(labelText: 'gRPC port', border: OutlineInputBorder()),
                  keyboardType: TextInputType.number,
                  inputFormatters: [FilteringTextInputFormatter.digitsOnly],
                  validator: _port,
                ),
              ),
            ],
          ),
          const SizedBox(height: 12),
          TextFormField(
            controller: _token,
            obscureText: !_showToken,
            autocorrect: false,
            enableSuggestions: false,
            decoration: InputDecoration(
              labelText: 'Token',
              hintText: 'mt_…',
              border: const OutlineInputBorder(),
              suffixIcon: IconButton(
                tooltip: _showToken ? 'Hide token' : 'Show token',
                icon: Icon(_showToken ? Icons.visibility_off : Icons.visibility),
                onPressed: () => setState(() => _showToken = !_showToken),
              ),
            ),
          ),
          const SizedBox(height: 12),
          TextFormField(
            controller: _project,
            decoration: const InputDecoration(
              labelText: 'Project (name or id)',
              border: OutlineInputBorder(),
            ),
            autocorrect: false,
            validator: _requiredText,
          ),
          const SizedBox(height: 8),
          SwitchListTile(
            contentPadding: EdgeInsets.zero,
            title: const Text('Use TLS'),
            subtitle: const Text('https / TLS gRPC; off for a dev server on the LAN'),
            value: _useTls,
            onChanged: (v) => setState(() => _useTls = v),
          ),
          SwitchListTile(
            contentPadding: EdgeInsets.zero,
            title: const Text('Prefer REST'),
            subtitle: const Text('Use HTTP even where gRPC is available'),
            value: _preferRest,
            onChanged: (v) => setState(() => _preferRest = v),
          ),
          SwitchListTile(
            contentPadding: EdgeInsets.zero,
            title: const Text('Downscale photos before upload'),
            subtitle: const Text("Resize to the project's input size: smaller uploads"),
            value: _downscale,
            onChanged: (v) => setState(() => _downscale = v),
          ),
          const SizedBox(height: 8),
          Text('Model file', style: theme.textTheme.titleSmall),
          const SizedBox(height: 8),
          SegmentedButton<ModelFormat>(
            segments: [
              for (final f in classifierFormats) ButtonSegment(value: f, label: Text(f.wireName)),
            ],
            selected: {_format},
            showSelectedIcon: false,
            onSelectionChanged: (s) => setState(() => _format = s.first),
          ),
          const SizedBox(height: 16),
          FilledButton.icon(
            onPressed: _saving ? null : _save,
            icon: const Icon(Icons.link),
            label: Text(_saving ? 'Connecting…' : 'Save and connect'),
          ),
          const SizedBox(height: 16),
          _StatusCard(state: state),
        ],
      ),
    );
  }
}

class _StatusCard extends StatelessWidget {
  const _StatusCard({required this.state});

  final AppState state;

  @override
  Widget build(BuildContext context) {
    final theme = Theme.of(context);
    final project = state.project;
    return Card(
      child: Padding(
        padding: const EdgeInsets.all(16),
        child: switch (state.status) {
          ConnectionStatus.disconnected => const Text('Not connected.'),
          ConnectionStatus.connecting => const Row(
            children: [
              SizedBox.square(dimension: 20, child: CircularProgressIndicator(strokeWidth: 2)),
              SizedBox(width: 12),
              Text('Connecting…'),
            ],
          ),
          ConnectionStatus.failed => Text(
            'Could not connect: ${state.error ?? 'unknown error'}',
            style: TextStyle(color: theme.colorScheme.error),
          ),
          ConnectionStatus.connected when project != null => Column(
            crossAxisAlignment: CrossAxisAlignment.start,
            children: [
              Text('Project ${project.name}', style: theme.textTheme.titleMedium),
              const SizedBox(height: 4),
              Text(
                'Input ${project.inputSpec.width}×${project.inputSpec.height} '
                '${project.inputSpec.colorMode.name}, '
                '${project.labels.length} labels${project.labelsFixed ? ' (fixed)' : ''}, '
                'promoted model v${project.promotedVersion}',
              ),
              if (project.labels.isNotEmpty) ...[
                const SizedBox(height: 8),
                Wrap(
                  spacing: 6,
                  runSpacing: 6,
                  children: [for (final l in project.labels) Chip(label: Text(l))],
                ),
              ],
            ],
          ),
          ConnectionStatus.connected => const Text('Connected.'),
        },
      ),
    );
  }
}
