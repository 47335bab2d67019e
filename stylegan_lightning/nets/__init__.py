"""Frozen auxiliary networks: identity (ArcFace IR-SE50, MobileFaceNet, insightface ONNX), face parsing (BiSeNet),
landmarks (FAN heatmaps, dlib 68 points), perceptual distances (LPIPS, DISTS), and the fixed face crops they need.
Weights are user-supplied files found through :mod:`stylegan_lightning.weights`.
"""

from .alignment import (ARCFACE_112x112, CELEBA64_FIVE_POINTS, FACE_TEMPLATES, FFHQ_FIVE_POINTS, PSP_ID_BOX,
                        SPHEREFACE_96x112, BoxCrop, SimilarityCrop, similarity_transform)
from .bisenet import BiSeNet
from .dlib_landmarks import ALIGNED_FACE_BOX, DlibLandmarkDetector
from .fan import FAN, load_fan
from .heatmaps import FLIP_PERMUTATION_68, hard_argmax, heatmap_targets, mirror_landmarks, soft_argmax
from .identity import IdentityEncoder, build_identity_encoder
from .irse import Backbone, BottleneckIR, BottleneckIRSE, get_blocks, ir_se50, load_ir_se50, make_body
from .landmarks import FFHQ_FAN_CROP, LandmarkNet, build_landmark_net
from .mobilefacenet import MobileFaceNet, load_mobilefacenet
from .onnx_arcface import OnnxArcFace, load_onnx_arcface
from .parsing import (CELEBAMASK_CLASSES, PARSER_CLASSES, FaceParser, build_face_parser, celebamask_to_parser,
                      load_bisenet, parser_to_celebamask)
from .perceptual import DISTSNetwork, LPIPSNetwork
