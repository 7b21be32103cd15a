import AVFoundation
import CoreImage
import UIKit

/// Back camera frames as RGB bytes (the whole frame, as the pipeline resizes whole images).
final class Camera: NSObject, ObservableObject, AVCaptureVideoDataOutputSampleBufferDelegate {
    let session = AVCaptureSession()
    private let queue = DispatchQueue(label: "camera")
    var onFrame: (([UInt8], Int, Int) -> Void)?

    func start() {
        AVCaptureDevice.requestAccess(for: .video) { granted in
            guard granted, let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back),
                  let input = try? AVCaptureDeviceInput(device: device) else { return }
            self.queue.async {
                self.session.beginConfiguration()
                self.session.sessionPreset = .vga640x480
                if self.session.canAddInput(input) { self.session.addInput(input) }
                let output = AVCaptureVideoDataOutput()
                output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
                output.alwaysDiscardsLateVideoFrames = true
                output.setSampleBufferDelegate(self, queue: self.queue)
                if self.session.canAddOutput(output) { self.session.addOutput(output) }
                output.connection(with: .video)?.videoRotationAngle = 90  // portrait
                self.session.commitConfiguration()
                self.session.startRunning()
            }
        }
    }

    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard let buffer = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        CVPixelBufferLockBaseAddress(buffer, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let width = CVPixelBufferGetWidth(buffer), height = CVPixelBufferGetHeight(buffer)
        let stride = CVPixelBufferGetBytesPerRow(buffer)
        let base = CVPixelBufferGetBaseAddress(buffer)!.assumingMemoryBound(to: UInt8.self)
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let p = y * stride + x * 4, o = (y * width + x) * 3
                rgb[o] = base[p + 2]; rgb[o + 1] = base[p + 1]; rgb[o + 2] = base[p]  // BGRA -> RGB
            }
        }
        onFrame?(rgb, width, height)
    }
}

/// UIImage -> RGB bytes at its pixel size, orientation applied.
func rgbBytes(of image: UIImage) -> ([UInt8], Int, Int)? {
    guard let cg = UIGraphicsImageRenderer(size: image.size, format: {
        let f = UIGraphicsImageRendererFormat(); f.scale = 1; return f
    }()).image(actions: { _ in image.draw(at: .zero) }).cgImage else { return nil }
    let width = cg.width, height = cg.height
    var rgba = [UInt8](repeating: 0, count: width * height * 4)
    guard let context = CGContext(data: &rgba, width: width, height: height, bitsPerComponent: 8, bytesPerRow: width * 4,
                                  space: CGColorSpaceCreateDeviceRGB(), bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return nil }
    context.draw(cg, in: CGRect(x: 0, y: 0, width: width, height: height))
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) { rgb[i * 3] = rgba[i * 4]; rgb[i * 3 + 1] = rgba[i * 4 + 1]; rgb[i * 3 + 2] = rgba[i * 4 + 2] }
    return (rgb, width, height)
}
