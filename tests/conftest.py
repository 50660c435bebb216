import sys
from pathlib import Path

# tests import their helper modules (the NAT reference model) by name
sys.path.insert(0, str(Path(__file__).parent))
