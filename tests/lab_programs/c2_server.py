import socket

server = socket.socket(family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0)
addr = "127.0.0.1"  # 0.0.0.0 / localhost 域名 是 ip 127.0.0.1
prot = 9696
server.bind((addr, prot))
server.listen(5)
client_socket, client_addr = server.accept()
print(f"client_socket :>>>> {client_socket}")
print(f"client_addr :>>>> {client_addr}")
data_from_client = client_socket.recv(1024)
print(f"data_from_client :>>>> {data_from_client.decode()}")
data_to_client = f"你好!我是服务端!{client_addr}"
client_socket.send(data_to_client.encode("utf-8"))
client_socket.close()
server.close()
