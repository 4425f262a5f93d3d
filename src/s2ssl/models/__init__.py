"""Networks in plain torch (torchvision is unusable on this CPU build): ResNet
encoders for any number of bands, a ResNet U-Net for per-pixel embeddings, the CSCL 3-D U-Net,
and projection / segmentation heads."""
