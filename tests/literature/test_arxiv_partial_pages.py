"""arXiv sometimes answers a later page with nothing: the pages already read are kept."""

from agentlab.literature.arxiv_source import make_client, search


def test_an_empty_later_page_keeps_the_first_pages(arxiv_server):
    client = make_client(arxiv_server.url, 0.0, page_size=10)
    client.num_retries = 0
    papers = search(client, "kv cache eviction", 25)  # pages at start 0 and 10 exist; start 20 is empty
    assert len(papers) == 20
    assert papers[0]["id"] == "2202.12139v1"
    assert len({p["id"] for p in papers}) == 20
