from classifier.taxonomy import label_index, lint


def _kinds(findings, kind):
    return [f for f in findings if f.kind == kind]


def test_it_finds_the_leaks_of_the_field_notes_checklist(jd_version):
    findings = lint.lint(jd_version)
    duplicates = {tuple(f.codes) for f in _kinds(findings, "duplicate_label")}
    assert duplicates == {("40.01.01", "45.02.02"), ("40.02.01", "45.02.01"), ("40.03.02", "45.03.01")}
    assert "'Elasticsearch' appears in 2 branches" in next(
        f.message for f in findings if f.codes == ["40.02.01", "45.02.01"])
    assert [f.codes for f in _kinds(findings, "empty_subtree")] == [["47"]]
    assert [f.codes for f in _kinds(findings, "missing_description")] == [["20.03.01"]]


def test_near_duplicate_siblings_are_found_by_embedding_similarity(jd_version, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # a fresh index folder: nothing embedded yet
    assert [f.kind for f in lint.lint(jd_version, embedder_key="multilingual-e5-small")
            if f.kind == "not_indexed"] == ["not_indexed"]
    label_index.own_vectors(jd_version, "multilingual-e5-small")
    near = _kinds(lint.lint(jd_version, embedder_key="multilingual-e5-small"), "near_duplicate")
    pairs = {tuple(f.codes) for f in near}
    assert ("20.02", "20.03") in pairs  # Repairs vs Maintenance: the same description twice
    assert ("10.01", "55.01") not in pairs
    assert "make their descriptions say how they differ" in near[0].message
