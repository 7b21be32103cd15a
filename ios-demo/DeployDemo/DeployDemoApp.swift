import SwiftUI

@main
struct DeployDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
