"""The 3D body: the model (SMPL-X format), semantic parts, fast skinning, the camera, landmark detection and fitting it to photos and videos, overlays."""
