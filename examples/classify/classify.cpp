// classify: an app on a cnnc-generated library. Loads LeNet-5's trained
// weights and classifies PNG images, or the test images of a dataset with
// their accuracy. Build (see README.md):
//
//   cnnc examples/lenet5.net -o out/lenet5.a
//   c++ -std=c++17 -O2 -Iout examples/classify/classify.cpp out/lenet5.a -lpng -lpthread -ldl -lz
//       -o out/classify
#include <png.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "lenet5.h"

namespace {

const char* kUsage =
    "usage: classify --load W.safetensors IMAGE.png ...\n"
    "       classify --load W.safetensors --data DATA [--show N] [--export DIR]\n"
    "  IMAGE.png: 28x28, gray or RGB (RGB is reduced to gray by luminance)\n"
    "  --data: mnist, fashion-mnist or a directory of IDX files; classifies its\n"
    "          test set and prints the accuracy and the first N predictions (10)\n"
    "  --export: also writes those N test images as DIR/test-K-LABEL.png\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Readable names for the datasets whose classes have them.
std::string className(const std::string& data, int label) {
  static const char* kFashion[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  if (data == "fashion-mnist" && label >= 0 && label < 10) return kFashion[label];
  return std::to_string(label);
}

// A 28x28 PNG as one example in [0,1], gray.
std::vector<float> readPng(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str()))
    throw cnnc::Error("cannot read '" + path + "': " + image.message);
  if (image.width != lenet5::kWidth || image.height != lenet5::kHeight) {
    std::string size = std::to_string(image.height) + "x" + std::to_string(image.width);
    png_image_free(&image);
    throw cnnc::Error("'" + path + "' is " + size + "; lenet5 takes 28x28 images");
  }
  bool color = image.format & PNG_FORMAT_FLAG_COLOR;
  image.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  std::vector<png_byte> pixels(PNG_IMAGE_SIZE(image), 0);
  if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr))
    throw cnnc::Error("cannot read '" + path + "': " + image.message);
  std::vector<float> example(lenet5::kHeight * lenet5::kWidth);
  for (size_t p = 0; p < example.size(); ++p) {
    const png_byte* px = pixels.data() + p * (color ? 3 : 1);
    double gray = color ? 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2] : px[0];
    example[p] = float(gray / 255.0);
  }
  return example;
}

void writePng(const std::string& path, const float* example) {
  std::vector<png_byte> pixels(lenet5::kHeight * lenet5::kWidth);
  for (size_t p = 0; p < pixels.size(); ++p) pixels[p] = png_byte(example[p] * 255.0f + 0.5f);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = lenet5::kWidth;
  image.height = lenet5::kHeight;
  image.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr))
    throw cnnc::Error("cannot write '" + path + "': " + image.message);
}

int run(int argc, char** argv) {
  std::string weights, data, exportDir;
  int show = 10;
  std::vector<std::string> images;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--load") {
      weights = value();
    } else if (arg == "--data") {
      data = value();
    } else if (arg == "--export") {
      exportDir = value();
    } else if (arg == "--show") {
      std::string text = value();
      char* end = nullptr;
      long count = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end || count < 0)
        throw UsageError("--show takes a count, not '" + text + "'");
      show = int(count);
    } else if (arg[0] == '-') {
      throw UsageError("unknown option '" + arg + "'");
    } else {
      images.push_back(arg);
    }
  }
  if (weights.empty()) throw UsageError("--load W.safetensors is required");
  if (data.empty() == images.empty()) throw UsageError("give either IMAGE.png files or --data");

  lenet5::Model model;
  model.load(weights);

  for (const std::string& path : images) {
    int label = model.predict(readPng(path).data());
    std::printf("%s: %s\n", path.c_str(), className(data, label).c_str());
  }
  if (data.empty()) return 0;

  cnnc::Dataset test = cnnc::loadDataset(data).test;
  int64_t correct = 0;
  for (int64_t i = 0; i < test.count; ++i) {
    int label = model.predict(test.image(i));
    correct += label == test.labels[size_t(i)];
    if (i < show) {
      std::printf("test image %lld: predicted %-11s true %s\n", static_cast<long long>(i),
                  className(data, label).c_str(), className(data, test.labels[size_t(i)]).c_str());
      if (!exportDir.empty())
        writePng(exportDir + "/test-" + std::to_string(i) + "-" +
                     std::to_string(test.labels[size_t(i)]) + ".png",
                 test.image(i));
    }
  }
  std::printf("accuracy on %lld test images: %.2f%%\n", static_cast<long long>(test.count),
              100.0 * double(correct) / double(test.count));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "classify: error: " << e.what() << "\n" << kUsage;
  } catch (const std::exception& e) {
    std::cerr << "classify: error: " << e.what() << "\n";
  }
  return 1;
}
