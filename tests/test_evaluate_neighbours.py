"""The test split's images whose neighbouring image ID sits in another split (reported both ways)."""

import pandas as pd

from fracture_model.evaluate import has_neighbour_elsewhere


def test_neighbours_across_a_block_edge_are_found():
    split = pd.DataFrame({
        "image_id": ["IMG0000008.jpg", "IMG0000009.jpg", "IMG0000010.jpg", "IMG0000011.jpg", "IMG0000030.jpg"],
        "split": ["train", "test", "test", "validation", "test"],
    })
    found = has_neighbour_elsewhere(split, "test")
    # 9 has 8 (train) before it; 10 has 11 (validation) after it; 30 has no neighbour at all
    assert found.to_dict() == {1: True, 2: True, 4: False}


def test_a_neighbour_in_the_same_split_does_not_count():
    split = pd.DataFrame({"image_id": ["IMG0000019.jpg", "IMG0000020.jpg"], "split": ["test", "test"]})
    assert not has_neighbour_elsewhere(split, "test").any()
