# Writes the random-weight stand-in default pack (data/models/imagenette-64) until the
# trained pack replaces it:  tools/devenv python3 tools/make-standin-pack.py
import sys, json, torch
sys.path.insert(0, 'tests/reference')
import make_packs as mp
from classifier_ref import ResNetCNN
classes = [
 (0,"n01440764","tench"),(217,"n02102040","English springer"),(482,"n02979186","cassette player"),
 (491,"n03000684","chain saw"),(497,"n03028079","church"),(566,"n03394916","French horn"),
 (569,"n03417042","garbage truck"),(571,"n03425413","gas pump"),(574,"n03445777","golf ball"),(701,"n03888257","parachute")]
C = [{"imagenet":i,"wnid":w,"name":n} for i,w,n in classes]
cfg = dict(img_resolution=64, img_channels=3, label_dim=10, model_channels=32, channel_mult=[1,2,2,2], num_blocks=2, attn_resolutions=[8])
main_cfg, main = mp.make_unet(1, **cfg)
gcfg = dict(cfg, model_channels=16); gcfg['attn_resolutions']=[]
guide_cfg, guide = mp.make_unet(2, **gcfg)
ccfg = dict(in_channels=3, resolution=64, widths=[16,32,64,128], blocks=[1,1,1,1], num_classes=10, label_space="pack", mean=[0.5]*3, std=[0.5]*3)
clf = ResNetCNN(**ccfg).eval()
meta = {"title":"Imagenette 64x64 stand-in (RANDOM weights, real shapes)", "licence":"CC0-1.0",
        "source":"random weights: placeholder until tools/train/train.py's pack lands",
        "kind":"pixel","resolution":64,"channels":3,"classes":C,
        "defaults":{"mode":"gfcg","steps":32,"guidance":1.0,"s_max":1.0,"temperature":1.0,"sigma_lo":0.0,"sigma_hi":1000.0,"lagged":False}}
mp.write_pack('data/models', 'imagenette-64', meta, {"main":("edm2-unet",main_cfg,main),"guide":("edm2-unet",guide_cfg,guide),"classifier":("resnet-cnn",ccfg,clf)}, dtype=torch.float16)
print(sum(p.numel() for p in main.parameters())/1e6, sum(p.numel() for p in guide.parameters())/1e6)
