/// mobiletrain example app: collect labelled photos, train on the server,
/// watch training live, download the model and classify on the device.
library;

import 'package:flutter/material.dart';

import 'src/app_state.dart';
import 'src/classify_page.dart';
import 'src/collect_page.dart';
import 'src/settings_page.dart';
import 'src/train_page.dart';

Future<void> main() async {
  // path_provider needs the binding before runApp.
  WidgetsFlutterBinding.ensureInitialized();
  final state = await AppState.load();
  runApp(MobiletrainExampleApp(state: state));
}

/// The root widget: Material 3 theme and the four tabs.
class MobiletrainExampleApp extends StatelessWidget {
  /// Creates the app around an already loaded [state].
  const MobiletrainExampleApp({super.key, required this.state});

  /// Shared state (settings, client, queue, model).
  final AppState state;

  @override
  Widget build(BuildContext context) {
    return AppScope(
      state: state,
      child: MaterialApp(
        title: 'mobiletrain',
        theme: ThemeData(colorSchemeSeed: Colors.teal),
        darkTheme: ThemeData(
          colorSchemeSeed: Colors.teal,
          brightness: Brightness.dark,
        ),
        home: const HomePage(),
      ),
    );
  }
}

/// Bottom navigation between settings, collect, train and model.
class HomePage extends StatefulWidget {
  /// Creates the home page.
  const HomePage({super.key});

  @override
  State<HomePage> createState() => _HomePageState();
}

class _HomePageState extends State<HomePage> {
  int? _index;

  @override
  Widget build(BuildContext context) {
    final state = AppScope.of(context);
    // Start on the settings tab until the app has a server to talk to.
    final index = _index ?? (state.settings.isComplete ? 1 : 0);
    return Scaffold(
      appBar: AppBar(
        title: Text(state.project?.name ?? 'mobiletrain'),
        actions: [_ConnectionBadge(status: state.status)],
      ),
      // IndexedStack keeps each tab's state (a running job watch, picked
      // photos) while the user switches tabs.
      body: IndexedStack(
        index: index,
        children: const [SettingsPage(), CollectPage(), TrainPage(), ClassifyPage()],
      ),
      bottomNavigationBar: NavigationBar(
        selectedIndex: index,
        onDestinationSelected: (i) => setState(() => _index = i),
        destinations: const [
          NavigationDestination(icon: Icon(Icons.settings_outlined), selectedIcon: Icon(Icons.settings), label: 'Server'),
          NavigationDestination(icon: Icon(Icons.add_a_photo_outlined), selectedIcon: Icon(Icons.add_a_photo), label: 'Collect'),
          NavigationDestination(icon: Icon(Icons.show_chart_outlined), selectedIcon: Icon(Icons.show_chart), label: 'Train'),
          NavigationDestination(icon: Icon(Icons.center_focus_strong_outlined), selectedIcon: Icon(Icons.center_focus_strong), label: 'Classify'),
        ],
      ),
    );
  }
}

class _ConnectionBadge extends StatelessWidget {
  const _ConnectionBadge({required this.status});

  final ConnectionStatus status;

  @override
  Widget build(BuildContext context) {
    final scheme = Theme.of(context).colorScheme;
    final (IconData icon, Color color, String tip) = switch (status) {
      ConnectionStatus.connected => (Icons.cloud_done, scheme.primary, 'Connected'),
      ConnectionStatus.connecting => (Icons.cloud_sync, scheme.tertiary, 'Connecting…'),
      ConnectionStatus.failed => (Icons.cloud_off, scheme.error, 'Connection failed'),
      ConnectionStatus.disconnected => (Icons.cloud_outlined, scheme.outline, 'Not connected'),
    };
    return Padding(
      padding: const EdgeInsets.only(right: 12),
      child: Tooltip(message: tip, child: Icon(icon, color: color)),
    );
  }
}
