import AVFoundation
import PhotosUI
import SwiftUI

/// Camera classification with TFLite or Core ML, a photo picker, top-3 with scores and latency.
struct ContentView: View {
    @StateObject private var camera = Camera()
    @State private var useCoreML = false
    @State private var classifier: Classifier?
    @State private var top: [Prediction] = []
    @State private var latencyMs = 0.0
    @State private var photoItem: PhotosPickerItem?
    @State private var photo: UIImage?
    @State private var error: String?

    var body: some View {
        NavigationStack {
            VStack(spacing: 12) {
                if let photo {
                    Image(uiImage: photo).resizable().scaledToFit().onTapGesture { self.photo = nil }
                } else {
                    CameraPreview(session: camera.session)
                }
                if let error { Text(error).foregroundStyle(.red) }
                ForEach(top, id: \.index) { p in
                    HStack { Text(p.label); Spacer(); Text(String(format: "%.3f", p.score)) }.font(.system(.title3, design: .monospaced))
                }
                Text(String(format: "%@: %.2f ms per inference", classifier?.name ?? "-", latencyMs)).font(.footnote)
                Toggle("Core ML", isOn: $useCoreML).disabled(!ModelFiles.hasCoreML)
                HStack {
                    PhotosPicker("Pick a photo", selection: $photoItem, matching: .images)
                    Spacer()
                    NavigationLink("Benchmark") { BenchmarkView(useCoreML: useCoreML) }
                }
            }
            .padding()
            .navigationTitle("Deploy Demo")
        }
        .onAppear {
            load()
            camera.onFrame = { rgb, w, h in if photo == nil { classify(rgb, w, h) } }
            camera.start()
        }
        .onChange(of: useCoreML) { _ in load() }
        .onChange(of: photoItem) { item in
            Task {
                guard let data = try? await item?.loadTransferable(type: Data.self), let image = UIImage(data: data),
                      let (rgb, w, h) = rgbBytes(of: image) else { return }
                photo = image
                classify(rgb, w, h)
            }
        }
    }

    private func load() {
        do {
            classifier = useCoreML ? try CoreMLClassifier() : try TFLiteClassifier(threads: 2)
            error = nil
        } catch {
            self.error = "No usable model: run `deploy export ios RUN_DIR` and rebuild (\(error))"
        }
    }

    private func classify(_ rgb: [UInt8], _ width: Int, _ height: Int) {
        guard let classifier, let result = try? classifier.classify(rgb: rgb, width: width, height: height) else { return }
        DispatchQueue.main.async { top = result.top; latencyMs = result.ms }
    }
}

struct CameraPreview: UIViewRepresentable {
    let session: AVCaptureSession

    func makeUIView(context: Context) -> UIView {
        let view = PreviewUIView()
        view.previewLayer.session = session
        view.previewLayer.videoGravity = .resizeAspect
        return view
    }

    func updateUIView(_ uiView: UIView, context: Context) {}

    final class PreviewUIView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }
}
