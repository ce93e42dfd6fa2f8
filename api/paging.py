from broker.pagination import PageRequest


def page_request(parameters) -> PageRequest:
    return PageRequest(page=parameters.page, page_size=parameters.page_size)
