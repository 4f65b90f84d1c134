"""cep-bus's composition root: the one package that imports both the shared package (`cepbus`) and the
services. It holds what needs everything: the `cep-bus` command (`cli`), `up` and its supervisor, the
embedded broker, the demo with its simulator and example partner, and the Kubernetes generator."""
