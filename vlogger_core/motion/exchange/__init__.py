"""Motion exchange with other tools: ARKit blendshape CSV (Live Link Face) and BVH."""
